/**
 * Prometheus's text exposition format (version 0.0.4), as a pure function: metric
 * families in, the text a scraper reads out. Each family has one `# HELP` and one
 * `# TYPE` line followed by its samples; label values are escaped (backslash, double
 * quote, newline), so a name people chose can hold anything. A family without samples
 * is left out (nothing is said of what is not known).
 *
 * Written here rather than taken from prom-client: that library keeps metrics as
 * long-lived objects in a registry one changes (`set`, `inc`), while a scrape here is
 * built afresh per request from what one caller may see, from counters the agent
 * already totals; the format itself is these few lines.
 */

export type MetricType = "counter" | "gauge";

export interface Sample {
  labels: Readonly<Record<string, string>>;
  value: number;
}

export interface MetricFamily {
  name: string;
  type: MetricType;
  help: string;
  samples: Sample[];
}

/** What a scraper is told the answer is. */
export const EXPOSITION_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value between double quotes: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** HELP text: backslash and newline escaped (a double quote stays as it is). */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
}

/** A sample's value as the format writes it: NaN, +Inf, -Inf, or the number. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/**
 * The families as exposition text. Throws on what would be a bug here rather than a
 * scrape the server refuses: an invalid metric or label name, a counter without `_total`,
 * one name twice, or two samples of a family with the same labels.
 */
export function exposition(families: readonly MetricFamily[]): string {
  const names = new Set<string>();
  const lines: string[] = [];
  for (const family of families) {
    if (!METRIC_NAME.test(family.name)) throw new Error(`invalid metric name: ${JSON.stringify(family.name)}`);
    if (family.type === "counter" && !family.name.endsWith("_total")) throw new Error(`a counter's name ends with _total: ${family.name}`);
    if (names.has(family.name)) throw new Error(`metric family ${family.name} given twice`);
    names.add(family.name);
    if (family.samples.length === 0) continue;
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
    const seen = new Set<string>();
    for (const sample of family.samples) {
      const pairs = Object.entries(sample.labels).map(([name, value]) => {
        if (!LABEL_NAME.test(name) || name.startsWith("__")) throw new Error(`invalid label name ${JSON.stringify(name)} in ${family.name}`);
        return `${name}="${escapeLabelValue(value)}"`;
      });
      const labels = pairs.length ? `{${pairs.join(",")}}` : "";
      const key = JSON.stringify(Object.entries(sample.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      if (seen.has(key)) throw new Error(`two samples of ${family.name} with the labels ${labels || "{}"}`);
      seen.add(key);
      lines.push(`${family.name}${labels} ${formatValue(sample.value)}`);
    }
  }
  return lines.length ? `${lines.join("\n")}\n` : "";
}
