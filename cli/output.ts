/** What the CLI prints: tables for people, JSON for scripts, progress bars only on a terminal. */

/** Columns padded to their widest cell; a header row in capitals. */
export function table(headers: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const cells = [headers.map((h) => h.toUpperCase()), ...rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
export function bytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

/** A size as people write it (20G, 512M, 1.5T, or bytes) in bytes; binary units, as qemu-img reads them. */
export function parseBytes(text: string): number | null {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$/i.exec(text);
  if (!match) return null;
  const power = " KMGT".indexOf(match[2]!.toUpperCase() || " ");
  return Math.round(Number(match[1]) * 1024 ** Math.max(0, power));
}

/** A one-line progress bar on stderr while it is a terminal; nothing at all when piped. */
export class Progress {
  private readonly live = process.stderr.isTTY === true;
  private last = 0;

  constructor(private readonly label: string) {}

  update(fraction: number, note = ""): void {
    if (!this.live) return;
    const now = Date.now();
    if (now - this.last < 100 && fraction < 1) return;
    this.last = now;
    const width = Math.max(10, Math.min(40, (process.stderr.columns ?? 80) - this.label.length - 30));
    const done = Math.round(Math.max(0, Math.min(1, fraction)) * width);
    process.stderr.write(`\r${this.label} [${"#".repeat(done)}${"-".repeat(width - done)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ${note}\x1b[K`);
  }

  end(): void {
    if (this.live) process.stderr.write("\n");
  }
}
