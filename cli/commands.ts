/**
 * Every command of the `guesthouse` CLI: its words, its arguments, its options, what it
 * does. Help, shell completion and the parser are made from this table.
 */
import type { ParseArgsConfig } from "node:util";

export type Options = NonNullable<ParseArgsConfig["options"]>;

export interface Command {
  /** The command's words, e.g. ["disk", "create"]. */
  words: string[];
  args: string;
  summary: string;
  options: Options;
  /** Option help, by option name. */
  help?: Record<string, string>;
  examples?: string[];
}

/** Options every command takes. */
export const GLOBAL: Options = {
  remote: { type: "string", short: "r" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};
export const GLOBAL_HELP: Record<string, string> = {
  remote: "the dashboard to talk to (see `guesthouse remote list`)",
  json: "print JSON for scripts instead of tables",
  help: "show this help",
};

const wait: Options = { wait: { type: "boolean", short: "w" }, timeout: { type: "string" } };
const waitHelp = { wait: "wait until it is done", timeout: "how long to wait, in seconds (default 300)" };

export const COMMANDS: Command[] = [
  {
    words: ["login"],
    args: "<url>",
    summary: "Remember a dashboard and an API token for it (made on your account page)",
    options: { name: { type: "string" }, token: { type: "string" } },
    help: { name: "the remote's name (default: the URL's host)", token: "the token (default: $GUESTHOUSE_TOKEN, or asked for)" },
    examples: ["guesthouse login https://guesthouse.example.com", "GUESTHOUSE_TOKEN=gh_… guesthouse login http://127.0.0.1:3000 --name lab"],
  },
  { words: ["remote", "list"], args: "", summary: "The dashboards you have logged in to", options: {} },
  { words: ["remote", "use"], args: "<name>", summary: "Talk to this dashboard from now on", options: {} },
  { words: ["remote", "remove"], args: "<name>", summary: "Forget a dashboard and its token", options: {} },
  {
    words: ["list"],
    args: "",
    summary: "The guests you may see",
    options: { team: { type: "string" }, tag: { type: "string" }, query: { type: "string", short: "q" }, templates: { type: "boolean" } },
    help: { team: "only this team's (its id)", tag: "only guests with this tag", query: "names containing this", templates: "only templates" },
  },
  { words: ["show"], args: "<guest>", summary: "One guest, by name or id", options: {} },
  {
    words: ["create"],
    args: "<name>",
    summary: "A new guest, from flags or a definition file (what export writes)",
    options: {
      vcpus: { type: "string" },
      memory: { type: "string" },
      disk: { type: "string", multiple: true },
      iso: { type: "string" },
      boot: { type: "string" },
      nic: { type: "string" },
      tag: { type: "string", multiple: true },
      from: { type: "string", short: "f" },
      start: { type: "boolean" },
    },
    help: {
      vcpus: "vCPUs (default 1)",
      memory: "memory, e.g. 512M or 2G (default 512M)",
      disk: "a new disk of this size, e.g. 10G (repeat for more)",
      iso: "an ISO as its CD-ROM",
      boot: "cdrom or disk first (default: cdrom with an ISO, else disk)",
      nic: "user (user-mode networking, the default) or none",
      tag: "a tag (repeat for more)",
      from: "a definition file (JSON); - for stdin",
      start: "start it once made",
    },
    examples: ["guesthouse create web1 --memory 1G --disk 10G --iso debian.iso", "guesthouse export web1 > web1.json && guesthouse create web2 --from web1.json"],
  },
  { words: ["export"], args: "<guest>", summary: "A guest's definition, as JSON (create --from takes it)", options: {} },
  { words: ["delete"], args: "<guest>", summary: "Delete a stopped guest", options: { "with-disks": { type: "boolean" } }, help: { "with-disks": "delete its disks too (else they stay, detached)" } },
  { words: ["start"], args: "<guest>", summary: "Start a guest", options: {} },
  { words: ["stop"], args: "<guest>", summary: "Stop a guest at once (power off)", options: {} },
  { words: ["shutdown"], args: "<guest>", summary: "Ask a guest to shut down (ACPI)", options: wait, help: waitHelp },
  { words: ["reboot"], args: "<guest>", summary: "Ask a guest to reboot (ACPI)", options: {} },
  { words: ["reset"], args: "<guest>", summary: "Reset a guest at once", options: {} },
  { words: ["pause"], args: "<guest>", summary: "Pause a guest's vCPUs", options: {} },
  { words: ["resume"], args: "<guest>", summary: "Resume a paused guest", options: {} },
  {
    words: ["console"],
    args: "<guest>",
    summary: "The guest's serial console in this terminal (Ctrl-] leaves), or its screen's URL",
    options: { vnc: { type: "boolean" }, url: { type: "boolean" } },
    help: { vnc: "print a websocket URL and ticket for a VNC client instead", url: "print the console page's address instead" },
  },
  {
    words: ["top"],
    args: "",
    summary: "Top consumers: the guests you may see, highest first by one figure",
    options: { sort: { type: "string", short: "s" }, window: { type: "string" } },
    help: { sort: "the figure to rank by: cpu (default), rss, diskRead, diskWrite, netRx, netTx, psiCpu, …", window: "now (default), or the average over the last hour or day" },
    examples: ["guesthouse top", "guesthouse top --sort diskWrite --window hour", "guesthouse top --json | jq '.items[0].name'"],
  },
  {
    words: ["metrics"],
    args: "<guest>",
    summary: "A guest's figures over a range: the latest, min, average and max of each",
    options: { range: { type: "string" } },
    help: { range: "hour (default, 10 s points), day, week (1 min), month or year (1 h)" },
    examples: ["guesthouse metrics web1", "guesthouse metrics web1 --range week --json"],
  },
  { words: ["disk", "list"], args: "", summary: "The disks you may see", options: {} },
  {
    words: ["disk", "create"],
    args: "<file> <size>",
    summary: "A new, empty, sparse disk image",
    options: { pool: { type: "string" }, format: { type: "string" }, encrypt: { type: "boolean" } },
    help: { pool: "storage folder (default: default)", format: "qcow2 (default) or raw", encrypt: "LUKS-encrypt it (asks for a passphrase, or $GUESTHOUSE_PASSPHRASE)" },
  },
  {
    words: ["disk", "upload"],
    args: "<path> [file]",
    summary: "Upload an image; an interrupted upload of the same name resumes",
    options: { pool: { type: "string" } },
    help: { pool: "storage folder (default: default)" },
  },
  { words: ["disk", "convert"], args: "<disk> <file> <format>", summary: "Convert into a new image beside it", options: wait, help: waitHelp },
  { words: ["disk", "resize"], args: "<disk> <size>", summary: "Grow a disk (or shrink, with --shrink)", options: { shrink: { type: "boolean" } } },
  { words: ["disk", "snapshot"], args: "<disk> <name>", summary: "Create an internal snapshot (qcow2)", options: { revert: { type: "boolean" }, delete: { type: "boolean" } }, help: { revert: "revert to it instead", delete: "delete it instead" } },
  { words: ["disk", "delete"], args: "<disk>", summary: "Delete a detached disk and its file", options: {} },
  { words: ["iso", "list"], args: "", summary: "The ISOs your team may use", options: {} },
  { words: ["iso", "upload"], args: "<path> [name]", summary: "Upload an ISO for your team; an interrupted upload resumes", options: {} },
  { words: ["iso", "delete"], args: "<name>", summary: "Delete an uploaded ISO", options: {} },
  { words: ["task", "list"], args: "", summary: "Your recent tasks", options: { running: { type: "boolean" } }, help: { running: "only running ones" } },
  { words: ["task", "wait"], args: "<task>", summary: "Wait until a task ends (exit 1 if it failed)", options: { timeout: { type: "string" } }, help: { timeout: waitHelp.timeout } },
  { words: ["task", "cancel"], args: "<task>", summary: "Cancel a running task", options: {} },
  { words: ["events"], args: "", summary: "Follow guest and task events as they happen (Ctrl-C stops)", options: {} },
  { words: ["token", "list"], args: "", summary: "Your API tokens", options: {} },
  {
    words: ["token", "create"],
    args: "<name>",
    summary: "A new API token, printed once",
    options: { scope: { type: "string" }, days: { type: "string" }, team: { type: "string" } },
    help: { scope: "read, operate, write or admin (default read)", days: "valid for this many days, 1 to 366 (default 30)", team: "only this team (its id)" },
  },
  { words: ["token", "revoke"], args: "<id>", summary: "Revoke one of your tokens at once", options: {} },
  { words: ["completion"], args: "<bash|zsh>", summary: "A shell completion script: eval \"$(guesthouse completion bash)\"", options: {} },
];

/** The command named by the first words of `argv`, and the words left. */
export function findCommand(argv: string[]): { command: Command; rest: string[] } | null {
  for (const command of [...COMMANDS].sort((a, b) => b.words.length - a.words.length)) {
    if (command.words.every((w, i) => argv[i] === w)) return { command, rest: argv.slice(command.words.length) };
  }
  return null;
}

function optionLine(name: string, option: Options[string], text: string): string {
  const flag = `${option.short ? `-${option.short}, ` : "    "}--${name}${option.type === "string" ? " <value>" : ""}`;
  return `  ${flag.padEnd(28)}${text}`;
}

export function commandHelp(command: Command): string {
  const lines = [`Usage: guesthouse ${command.words.join(" ")}${command.args ? ` ${command.args}` : ""} [options]`, "", command.summary, ""];
  const own = Object.entries(command.options);
  if (own.length) lines.push("Options:", ...own.map(([name, o]) => optionLine(name, o, command.help?.[name] ?? "")), "");
  lines.push("Global options:", ...Object.entries(GLOBAL).map(([name, o]) => optionLine(name, o, GLOBAL_HELP[name] ?? "")));
  if (command.examples) lines.push("", "Examples:", ...command.examples.map((e) => `  ${e}`));
  return `${lines.join("\n")}\n`;
}

export function mainHelp(): string {
  const rows = COMMANDS.map((c) => `  ${`${c.words.join(" ")} ${c.args}`.padEnd(34)}${c.summary}`);
  return [
    "guesthouse: drive a Guesthouse dashboard from the command line, through its REST API.",
    "",
    "Usage: guesthouse <command> [arguments] [options]",
    "",
    "Commands:",
    ...rows,
    "",
    "Every command takes --help, --json (for scripts) and --remote <name>.",
    "Exit codes: 0 done, 1 failed, 2 usage error, 3 refused (not allowed, not found, wrong state).",
    "",
  ].join("\n");
}
