/**
 * `guesthouse`, the command-line client: every command talks to a dashboard through its
 * public REST API only (client.ts), as any script could. Commands are described once
 * (commands.ts); this file runs them.
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { answerOf, Client } from "./client";
import { commandHelp, COMMANDS, findCommand, GLOBAL, mainHelp, type Command } from "./commands";
import { completion } from "./completion";
import { readConfig, remoteFor, writeConfig } from "./config";
import { ApiError, EXIT, Failure, UsageError } from "./errors";
import { rangeOf, seriesTable, topQuery, topTable, type Series, type TopConsumers } from "./metrics";
import { serialConsole } from "./serial";
import { bytes, parseBytes, printJson, Progress, table } from "./output";
import { upload } from "./upload";

type Values = Record<string, string | boolean | string[] | undefined>;

interface Guest {
  id: string;
  name: string;
  state: string | null;
  vcpus: number;
  memoryMiB: number;
  isTemplate: boolean;
  tags: string[];
  owner: string;
  team: { id: string; name: string };
  host: string;
  disks?: Array<{ id: string; file: string; format: string; bus: string; sizeBytes: number }>;
  cdroms?: Array<{ iso: string }>;
  nics?: Array<{ mac: string; model: string }>;
  bootOrder?: string[];
  description?: string;
}
interface Task {
  id: string;
  kind: string;
  title: string;
  state: string;
  progress: number | null;
  message: string | null;
  startedAt: string;
}

const POWER: Record<string, string> = { start: "start", stop: "force-off", shutdown: "shutdown", reboot: "reboot", reset: "reset", pause: "pause", resume: "resume" };

async function run(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    process.stdout.write(mainHelp());
    return argv.length === 0 ? EXIT.usage : EXIT.ok;
  }
  if (argv[0] === "--version") {
    process.stdout.write("guesthouse 1 (API v1)\n");
    return EXIT.ok;
  }
  const found = findCommand(argv);
  if (!found) throw new UsageError(`Unknown command "${argv.filter((a) => !a.startsWith("-")).slice(0, 2).join(" ")}". See \`guesthouse --help\`.`);
  const { command, rest } = found;
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: rest, options: { ...GLOBAL, ...command.options }, allowPositionals: true, strict: true }) as typeof parsed;
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split("\n")[0]} See \`guesthouse ${command.words.join(" ")} --help\`.`);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(commandHelp(command));
    return EXIT.ok;
  }
  const wanted = (command.args.match(/<[^>]+>/g) ?? []).length;
  const most = (command.args.match(/[<[][^>\]]+[>\]]/g) ?? []).length;
  if (positionals.length < wanted || positionals.length > most) {
    throw new UsageError(`Usage: guesthouse ${command.words.join(" ")} ${command.args}. See --help.`);
  }
  return (await HANDLERS[command.words.join(" ")]!(positionals, values, command)) ?? EXIT.ok;
}

const client = (values: Values) => new Client(remoteFor(values.remote as string | undefined));
const json = (values: Values) => values.json === true;
const seconds = (values: Values, fallback = 300): number => {
  const raw = values.timeout;
  if (raw === undefined) return fallback;
  if (typeof raw !== "string" || !/^\d{1,6}$/.test(raw)) throw new UsageError("--timeout is a number of seconds.");
  return Number(raw);
};

/** A guest by id, or by its name among those the caller sees (refused when two teams have one of that name). */
async function guestOf(api: Client, ref: string): Promise<Guest> {
  const byId = await api.get<Guest>(`/guests/${encodeURIComponent(ref)}`).catch((err: unknown) => {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  });
  if (byId) return byId;
  const list = await api.get<{ items: Guest[] }>(`/guests?q=${encodeURIComponent(ref)}&pageSize=500`);
  const named = list.items.filter((g) => g.name === ref);
  if (named.length === 0) throw new ApiError(404, "not-found", `There is no guest "${ref}" that you may see.`);
  if (named.length > 1) throw new UsageError(`"${ref}" names guests of several teams (${named.map((g) => g.team.name).join(", ")}); use its id.`);
  return api.get<Guest>(`/guests/${named[0]!.id}`);
}

/** A disk by id, or by its file name. */
async function diskOf(api: Client, ref: string): Promise<{ id: string; file: string }> {
  const disks = (await api.get<{ items: Array<{ id: string; file: string; pool: string }> }>("/disks")).items;
  const matches = disks.filter((d) => d.id === ref || d.file === ref || `${d.pool}/${d.file}` === ref);
  if (matches.length === 0) throw new ApiError(404, "not-found", `There is no disk "${ref}" that you may see.`);
  if (matches.length > 1) throw new UsageError(`"${ref}" names several disks; use its id or <pool>/<file>.`);
  return matches[0]!;
}

/** Waits for a task to end, with a progress bar on a terminal; a failed task is a failure. */
async function waitTask(api: Client, id: string, timeoutS: number, quiet = false): Promise<Task> {
  const deadline = Date.now() + timeoutS * 1000;
  const bar = quiet ? null : new Progress(`task ${id.slice(0, 12)}`);
  let task = await api.get<Task>(`/tasks/${encodeURIComponent(id)}`);
  while (task.state === "running" && Date.now() < deadline) {
    bar?.update(task.progress ?? 0, task.message ?? "");
    const wait = Math.max(1, Math.min(5, Math.ceil((deadline - Date.now()) / 1000)));
    task = await api.get<Task>(`/tasks/${encodeURIComponent(id)}?wait=${wait}`);
  }
  bar?.update(task.state === "succeeded" ? 1 : (task.progress ?? 0), task.state);
  bar?.end();
  if (task.state === "running") throw new Failure(`The task is still running after ${timeoutS} s; \`guesthouse task wait ${id}\` waits on.`);
  if (task.state !== "succeeded") throw new Failure(`The task ${task.state}${task.message ? `: ${task.message}` : "."}`);
  return task;
}

async function waitForState(api: Client, id: string, states: string[], timeoutS: number): Promise<string> {
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    const { state } = await api.get<Guest>(`/guests/${id}`);
    if (state && states.includes(state)) return state;
    if (Date.now() > deadline) throw new Failure(`Still ${state} after ${timeoutS} s.`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function guestsTable(items: Guest[]): string {
  return table(
    ["name", "state", "vcpus", "memory", "team", "owner", "id"],
    items.map((g) => [g.isTemplate ? `${g.name} (template)` : g.name, g.state ?? "unknown", g.vcpus, bytes(g.memoryMiB * 2 ** 20), g.team.name, g.owner, g.id]),
  );
}

function readSecret(prompt: string, fromEnv: string | undefined): Promise<string> {
  if (fromEnv) return Promise.resolve(fromEnv);
  if (!process.stdin.isTTY) throw new UsageError(`${prompt.replace(/:\s*$/, "")} is needed: give it with its option or environment variable.`);
  return new Promise((resolve) => {
    process.stderr.write(prompt);
    process.stdin.setRawMode(true);
    let text = "";
    const onData = (chunk: Buffer) => {
      for (const c of chunk.toString("utf8")) {
        if (c === "\r" || c === "\n") {
          process.stdin.setRawMode(false);
          process.stdin.off("data", onData);
          process.stdin.pause();
          process.stderr.write("\n");
          return resolve(text);
        }
        if (c === "\u0003") process.exit(130);
        text = c === "\u007f" ? text.slice(0, -1) : text + c;
      }
    };
    process.stdin.on("data", onData);
  });
}

const power = (action: string) => async ([ref]: string[], values: Values) => {
  const api = client(values);
  const guest = await guestOf(api, ref!);
  const result = await api.post<{ state: string }>(`/guests/${guest.id}/power`, { action });
  let state = result.state;
  if (values.wait && action === "shutdown") state = await waitForState(api, guest.id, ["stopped"], seconds(values));
  if (json(values)) printJson({ id: guest.id, name: guest.name, state });
  else process.stdout.write(`${guest.name}: ${state}\n`);
};

const HANDLERS: Record<string, (args: string[], values: Values, command: Command) => Promise<number | void>> = {
  async login([url], values) {
    let base: URL;
    try {
      base = new URL(url!);
    } catch {
      throw new UsageError(`"${url}" is not a URL; give the dashboard's address, such as https://guesthouse.example.com.`);
    }
    if (base.protocol !== "https:" && base.protocol !== "http:") throw new UsageError("The dashboard's address starts with https:// (or http://).");
    const token = (values.token as string | undefined) ?? (await readSecret("API token (from your account page): ", process.env.GUESTHOUSE_TOKEN));
    const name = (values.name as string | undefined) ?? base.host;
    if (!/^[\w.:-]{1,64}$/.test(name)) throw new UsageError("A remote's name is 1 to 64 letters, digits, '.', ':', '_' or '-'.");
    const api = new Client({ url: base.origin, token });
    const tokens = await api.get<{ items: Array<{ name: string; scope: string; expiresAt: string }> }>("/tokens");
    const config = readConfig();
    config.remotes[name] = { url: base.origin, token };
    config.current = name;
    writeConfig(config);
    if (json(values)) printJson({ remote: name, url: base.origin });
    else process.stdout.write(`Logged in to ${base.origin} as "${name}" (you have ${tokens.items.length} token${tokens.items.length === 1 ? "" : "s"}); it is the current remote.\n`);
  },
  async "remote list"(_args, values) {
    const config = readConfig();
    const rows = Object.entries(config.remotes).map(([name, r]) => ({ name, url: r.url, current: name === config.current }));
    if (json(values)) return void printJson(rows);
    process.stdout.write(`${table(["", "name", "url"], rows.map((r) => [r.current ? "*" : "", r.name, r.url]))}\n`);
  },
  async "remote use"([name]) {
    const config = readConfig();
    if (!config.remotes[name!]) throw new UsageError(`There is no remote "${name}"; see \`guesthouse remote list\`.`);
    config.current = name!;
    writeConfig(config);
  },
  async "remote remove"([name]) {
    const config = readConfig();
    if (!config.remotes[name!]) throw new UsageError(`There is no remote "${name}".`);
    delete config.remotes[name!];
    if (config.current === name) config.current = Object.keys(config.remotes)[0] ?? null;
    writeConfig(config);
  },
  async list(_args, values) {
    const api = client(values);
    const filters = new URLSearchParams();
    if (values.team) filters.set("team", values.team as string);
    if (values.tag) filters.set("tag", values.tag as string);
    if (values.query) filters.set("q", values.query as string);
    if (values.templates) filters.set("template", "true");
    const items: Guest[] = [];
    for (let page = 1; ; page++) {
      filters.set("page", String(page));
      filters.set("pageSize", "500");
      const answer = await api.get<{ items: Guest[]; total: number }>(`/guests?${filters}`);
      items.push(...answer.items);
      if (items.length >= answer.total || answer.items.length === 0) break;
    }
    if (json(values)) return void printJson(items);
    process.stdout.write(items.length ? `${guestsTable(items)}\n` : "No guests.\n");
  },
  async show([ref], values) {
    const guest = await guestOf(client(values), ref!);
    if (json(values)) return void printJson(guest);
    const lines: Array<[string, string]> = [
      ["name", guest.name],
      ["id", guest.id],
      ["state", guest.state ?? "unknown (the host cannot be reached)"],
      ["team", `${guest.team.name} (owner ${guest.owner})`],
      ["host", guest.host],
      ["vcpus", String(guest.vcpus)],
      ["memory", bytes(guest.memoryMiB * 2 ** 20)],
      ["boot", (guest.bootOrder ?? []).join(", ")],
      ...(guest.disks ?? []).map((d, i): [string, string] => [`disk ${i}`, `${d.file} (${d.format}, ${bytes(d.sizeBytes)}, ${d.bus}) ${d.id}`]),
      ...(guest.cdroms ?? []).map((c, i): [string, string] => [`cdrom ${i}`, c.iso]),
      ...(guest.nics ?? []).map((n, i): [string, string] => [`nic ${i}`, `${n.mac} (${n.model})`]),
      ...(guest.tags.length ? [["tags", guest.tags.join(", ")] as [string, string]] : []),
      ...(guest.description ? [["description", guest.description] as [string, string]] : []),
    ];
    const width = Math.max(...lines.map(([k]) => k.length));
    process.stdout.write(`${lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n")}\n`);
  },
  async create([name], values) {
    const api = client(values);
    let definition: Record<string, unknown>;
    if (values.from) {
      const file = values.from as string;
      const text = file === "-" ? fs.readFileSync(0, "utf8") : fs.readFileSync(file, "utf8");
      try {
        definition = { ...(JSON.parse(text) as Record<string, unknown>), name };
      } catch (err) {
        throw new UsageError(`${file} is not JSON: ${(err as Error).message}`);
      }
    } else {
      const size = (flag: string, text: string) => {
        const n = parseBytes(text);
        if (n === null) throw new UsageError(`--${flag} ${text}: write a size such as 512M or 10G.`);
        return n;
      };
      const memory = size("memory", (values.memory as string | undefined) ?? "512M");
      const disks = ((values.disk as string[] | undefined) ?? []).map((d) => size("disk", d));
      const vcpus = Number((values.vcpus as string | undefined) ?? "1");
      if (!Number.isInteger(vcpus)) throw new UsageError("--vcpus is a whole number.");
      const iso = values.iso as string | undefined;
      const boot = (values.boot as string | undefined) ?? (iso ? "cdrom" : "disk");
      if (boot !== "cdrom" && boot !== "disk") throw new UsageError("--boot is cdrom or disk.");
      const nic = (values.nic as string | undefined) ?? "user";
      if (nic !== "user" && nic !== "none") throw new UsageError("--nic is user or none.");
      definition = {
        guesthouse: 1,
        name,
        machine: "q35",
        firmware: "bios",
        vcpus,
        sockets: 1,
        threads: 1,
        memoryMiB: Math.round(memory / 2 ** 20),
        bootOrder: boot === "cdrom" ? ["cdrom", "disk"] : ["disk", "cdrom"],
        display: "std",
        serial: true,
        rtc: "utc",
        description: "",
        tags: (values.tag as string[] | undefined) ?? [],
        disks: disks.map((b) => ({ sizeGiB: Math.max(1, Math.ceil(b / 2 ** 30)), format: "qcow2", bus: "virtio", cache: "none", readOnly: false })),
        cdroms: iso ? [{ iso }] : [],
        nics: nic === "user" ? [{ model: "virtio", isolated: false, forwards: [] }] : [],
      };
    }
    const guest = await api.post<Guest>("/guests", definition);
    let state = guest.state;
    if (values.start) state = (await api.post<{ state: string }>(`/guests/${guest.id}/power`, { action: "start" })).state;
    if (json(values)) return void printJson({ ...guest, state });
    process.stdout.write(`Created ${guest.name} (${guest.id})${values.start ? `; ${state}` : ""}.\n`);
  },
  async export([ref], values) {
    const api = client(values);
    const guest = await guestOf(api, ref!);
    printJson(await api.get(`/guests/${guest.id}/definition`));
  },
  async delete([ref], values) {
    const api = client(values);
    const guest = await guestOf(api, ref!);
    const result = await api.delete<{ deletedDisks: number; keptDisks: number }>(`/guests/${guest.id}?disks=${values["with-disks"] ? "delete" : "keep"}`);
    if (json(values)) return void printJson({ id: guest.id, ...result });
    process.stdout.write(`Deleted ${guest.name}: ${result.deletedDisks} disk(s) deleted, ${result.keptDisks} kept.\n`);
  },
  ...Object.fromEntries(Object.entries(POWER).map(([word, action]) => [word, power(action)])),
  async console([ref], values) {
    const api = client(values);
    const guest = await guestOf(api, ref!);
    if (values.url) return void process.stdout.write(`${new URL(`/guests/${guest.id}/console`, api.remote.url).href}\n`);
    const opening = await api.post<{ status: string; url?: string; ticket?: string; message?: string }>(`/guests/${guest.id}/console`, { kind: values.vnc ? "vnc" : "serial" });
    if (opening.status !== "ticket") throw new ApiError(409, "conflict", opening.message ?? `${guest.name} has no console now.`);
    if (values.vnc) {
      if (json(values)) return void printJson(opening);
      process.stdout.write(`${opening.url}\n`);
      process.stderr.write("Open it within a few seconds with a websocket VNC client, sending the header Authorization: Bearer <your token>; the first message is the VNC password.\n");
      return;
    }
    return serialConsole(opening.url!, api.remote.token, guest.name);
  },
  async top(_args, values) {
    const answer = await client(values).get<TopConsumers>(topQuery(values.sort as string | undefined, values.window as string | undefined));
    if (json(values)) return void printJson(answer);
    if (answer.items.length === 0) return void process.stdout.write("There are no guests you may see.\n");
    const { headers, rows } = topTable(answer);
    process.stdout.write(`${table(headers, rows)}\n`);
  },
  async metrics([ref], values) {
    const range = rangeOf(values.range as string | undefined);
    const api = client(values);
    const guest = await guestOf(api, ref!);
    const series = await api.get<Series>(`/guests/${guest.id}/metrics?range=${range}`);
    if (json(values)) return void printJson(series);
    const { headers, rows } = seriesTable(series);
    if (rows.length === 0) return void process.stdout.write(`${guest.name} has no figures over the last ${range} yet: a guest is sampled while it runs.\n`);
    process.stdout.write(`${guest.name}, the last ${range} (${series.t.length} points of ${series.resolution} s):\n${table(headers, rows)}\n`);
  },
  async "disk list"(_args, values) {
    const items = (await client(values).get<{ items: Array<{ id: string; pool: string; file: string; format: string; state: string; sizeBytes: number; guest: { name: string } | null; team: { name: string } }> }>("/disks")).items;
    if (json(values)) return void printJson(items);
    process.stdout.write(`${table(["file", "pool", "format", "size", "state", "guest", "team", "id"], items.map((d) => [d.file, d.pool, d.format, bytes(d.sizeBytes), d.state, d.guest?.name ?? "-", d.team.name, d.id]))}\n`);
  },
  async "disk create"([file, size], values) {
    const api = client(values);
    const encrypt = values.encrypt === true;
    const passphrase = encrypt ? await readSecret("Passphrase: ", process.env.GUESTHOUSE_PASSPHRASE) : "";
    const disk = await api.post<{ id: string; file: string; sizeBytes: number }>("/disks", { pool: (values.pool as string | undefined) ?? "default", file, format: (values.format as string | undefined) ?? "qcow2", size, encrypt, passphrase });
    if (json(values)) return void printJson(disk);
    process.stdout.write(`Created ${disk.file} (${bytes(disk.sizeBytes)}), ${disk.id}.\n`);
  },
  async "disk upload"([source, file], values) {
    const result = await upload(client(values), source!, (values.pool as string | undefined) ?? "default", file ?? path.basename(source!));
    if (json(values)) return void printJson(result);
    process.stdout.write(`Uploaded ${file ?? path.basename(source!)} (${result.format}, sha256 ${result.sha256}).\n`);
  },
  async "disk convert"([ref, file, format], values) {
    const api = client(values);
    const disk = await diskOf(api, ref!);
    const task = await api.post<Task>(`/disks/${disk.id}/convert`, { file, format });
    const done = values.wait ? await waitTask(api, task.id, seconds(values), json(values)) : task;
    if (json(values)) return void printJson(done);
    process.stdout.write(values.wait ? `Converted ${disk.file} into ${file}.\n` : `Converting ${disk.file} into ${file}: task ${task.id} (guesthouse task wait ${task.id}).\n`);
  },
  async "disk resize"([ref, size], values) {
    const api = client(values);
    const disk = await diskOf(api, ref!);
    const after = await api.post<{ sizeBytes: number }>(`/disks/${disk.id}/resize`, { size, shrink: values.shrink === true });
    if (json(values)) return void printJson(after);
    process.stdout.write(`${disk.file} is now ${bytes(after.sizeBytes)}.\n`);
  },
  async "disk snapshot"([ref, name], values) {
    if (values.revert && values.delete) throw new UsageError("Choose --revert or --delete, not both.");
    const api = client(values);
    const disk = await diskOf(api, ref!);
    const op = values.revert ? "revert" : values.delete ? "delete" : "create";
    const after = await api.post<{ snapshots: number }>(`/disks/${disk.id}/snapshots`, { op, name });
    if (json(values)) return void printJson(after);
    process.stdout.write(`${op === "create" ? "Snapshot" : op === "revert" ? "Reverted to" : "Deleted snapshot"} ${name} of ${disk.file} (${after.snapshots} snapshot(s) now).\n`);
  },
  async "disk delete"([ref], values) {
    const api = client(values);
    const disk = await diskOf(api, ref!);
    await api.delete(`/disks/${disk.id}`);
    if (!json(values)) process.stdout.write(`Deleted ${disk.file}.\n`);
  },
  async "iso list"(_args, values) {
    const items = (await client(values).get<{ items: Array<{ name: string; sizeBytes: number; team: string | null; published: boolean; usedBy: string[] }> }>("/isos")).items;
    if (json(values)) return void printJson(items);
    process.stdout.write(`${table(["name", "size", "team", "published", "used by"], items.map((i) => [i.name, bytes(i.sizeBytes), i.team ?? "(host)", i.published ? "yes" : "no", i.usedBy.join(", ")]))}\n`);
  },
  async "iso upload"([source, name], values) {
    const result = await upload(client(values), source!, "isos", name ?? path.basename(source!));
    if (json(values)) return void printJson(result);
    process.stdout.write(`Uploaded ${name ?? path.basename(source!)} (sha256 ${result.sha256}).\n`);
  },
  async "iso delete"([name], values) {
    await client(values).delete(`/isos/${encodeURIComponent(name!)}`);
    if (!json(values)) process.stdout.write(`Deleted ${name}.\n`);
  },
  async "task list"(_args, values) {
    const items = (await client(values).get<{ items: Task[] }>(`/tasks${values.running ? "?state=running" : ""}`)).items;
    if (json(values)) return void printJson(items);
    process.stdout.write(`${table(["id", "kind", "state", "progress", "started", "title"], items.map((t) => [t.id, t.kind, t.state, t.progress === null ? "-" : `${Math.round(t.progress * 100)}%`, t.startedAt.replace("T", " ").slice(0, 19), t.title]))}\n`);
  },
  async "task wait"([id], values) {
    const task = await waitTask(client(values), id!, seconds(values), json(values));
    if (json(values)) printJson(task);
    else process.stdout.write(`${task.title}: ${task.state}.\n`);
  },
  async "task cancel"([id], values) {
    const task = await client(values).post<Task>(`/tasks/${encodeURIComponent(id!)}/cancel`);
    if (json(values)) printJson(task);
    else process.stdout.write(`${task.title}: ${task.state}.\n`);
  },
  async events(_args, values) {
    const api = client(values);
    let res: Response;
    try {
      res = await fetch(api.url("/events"), { headers: { authorization: `Bearer ${api.remote.token}`, accept: "text/event-stream" } });
    } catch (err) {
      throw new Failure(`Cannot reach ${api.remote.url}: ${(err as Error).message}`);
    }
    if (!res.ok) await answerOf(res);
    process.stderr.write(`Following the events of ${api.remote.url}; Ctrl-C stops.\n`);
    let buffer = "";
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.+)$/m.exec(block)?.[1];
        const data = /^data: (.+)$/m.exec(block)?.[1];
        if (!event || !data) continue;
        if (event === "ended") throw new ApiError(401, "unauthenticated", JSON.parse(data) as string);
        if (json(values)) process.stdout.write(`${JSON.stringify({ event, ...(JSON.parse(data) as object) })}\n`);
        else {
          const d = JSON.parse(data) as Record<string, unknown>;
          const time = new Date().toISOString().slice(11, 19);
          process.stdout.write(event === "guest" ? `${time}  guest ${d.id}  ${d.state}\n` : `${time}  task ${d.id}  ${d.state}${typeof d.progress === "number" ? ` ${Math.round(d.progress * 100)}%` : ""}${d.message ? `  ${d.message}` : ""}\n`);
        }
      }
    }
    throw new Failure("The event stream ended.");
  },
  async "token list"(_args, values) {
    const items = (await client(values).get<{ items: Array<{ id: string; name: string; scope: string; team: { name: string } | null; expiresAt: string; lastUsedAt: string | null; revokedAt: string | null }> }>("/tokens")).items;
    if (json(values)) return void printJson(items);
    const day = (d: string | null) => (d ? d.slice(0, 10) : "-");
    process.stdout.write(`${table(["name", "scope", "team", "expires", "last used", "state", "id"], items.map((t) => [t.name, t.scope, t.team?.name ?? "all", day(t.expiresAt), day(t.lastUsedAt), t.revokedAt ? "revoked" : new Date(t.expiresAt) < new Date() ? "expired" : "working", t.id.slice(0, 16)]))}\n`);
  },
  async "token create"([name], values) {
    const days = Number((values.days as string | undefined) ?? "30");
    const made = await client(values).post<{ token: string; id: string }>("/tokens", { name, scope: (values.scope as string | undefined) ?? "read", days, ...(values.team ? { teamId: values.team } : {}) });
    if (json(values)) return void printJson(made);
    process.stdout.write(`${made.token}\n`);
    process.stderr.write("This is the only time the token is shown; keep it somewhere safe.\n");
  },
  async "token revoke"([id], values) {
    const api = client(values);
    // The list shows the first 16 characters of an id: those are enough to name it.
    const tokens = (await api.get<{ items: Array<{ id: string; name: string }> }>("/tokens")).items.filter((t) => t.id.startsWith(id!) || t.name === id);
    if (tokens.length !== 1) throw tokens.length ? new UsageError(`"${id}" names ${tokens.length} tokens; give more of its id.`) : new ApiError(404, "not-found", `You have no token "${id}".`);
    await api.delete(`/tokens/${tokens[0]!.id}`);
    if (!json(values)) process.stdout.write(`Revoked ${tokens[0]!.name}.\n`);
  },
  async completion([shell]) {
    if (shell !== "bash" && shell !== "zsh") throw new UsageError("guesthouse completion bash, or zsh.");
    process.stdout.write(completion(shell, COMMANDS));
  },
};

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const code = err instanceof UsageError || err instanceof ApiError || err instanceof Failure ? err.exitCode : EXIT.failure;
    const field = err instanceof ApiError && err.field ? ` (${err.field})` : "";
    process.stderr.write(`guesthouse: ${(err as Error).message}${field}\n`);
    process.exitCode = code;
  },
);
