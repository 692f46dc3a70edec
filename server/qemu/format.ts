/** Display of an argument array; kept apart from args.ts so pages need no path module. */

/** The command line as a person would type it, for display (each argument quoted if needed). */
export function formatCommandLine(argv: readonly string[], { wrap = false } = {}): string {
  const quoted = argv.map((arg) => (/^[A-Za-z0-9_./:=,@+-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`));
  if (!wrap) return quoted.join(" ");
  // One option and its value per line, joined with shell line continuations.
  const lines: string[] = [];
  for (const arg of quoted) {
    if (lines.length === 0 || arg.startsWith("-")) lines.push(arg);
    else lines[lines.length - 1] += ` ${arg}`;
  }
  return lines.join(" \\\n  ");
}
