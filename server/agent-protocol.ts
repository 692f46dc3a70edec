/**
 * The host agent's HTTP/JSON protocol, written down once. AGENT_ROUTES is the API's
 * reference: the agent's router (server/agent/api.ts) answers exactly these routes and
 * parses each request with the schemas here; the web's client (server/agent-client)
 * builds its paths from the same entries and checks each reply with them. Request
 * schemas reuse the domain's (server/domain/validation.ts), so a spec the web would
 * refuse, the agent refuses for the same reason.
 *
 * The agent listens on a unix socket readable only by its owner. Errors are
 * `{ code, message, detail? }` with the status from ERROR_CODES.
 *
 * A change that the other side would misread (a route renamed, a field required or
 * retyped, a reply's meaning changed) raises AGENT_PROTOCOL_VERSION: the client asks
 * the agent's version before anything else and refuses to talk across a difference.
 */
import { z } from "zod";
import {
  AGENT_SERIAL_UPGRADE,
  AGENT_VNC_UPGRADE,
  GUEST_STATES,
  NEW_DISK_FORMATS,
  PASTE_MAX_CHARS,
  SCREENSHOT_MAX_WIDTH,
  TASK_KINDS,
  TASK_STATES,
  THUMBNAIL_WIDTH,
  type GuestStatus,
  type HostInfo,
  type ImageInfo,
  type NativeVncPassword,
  type NicAddresses,
  type TaskStatus,
  type UploadPart,
} from "./domain/types";
import { KEYBOARD_LAYOUTS } from "./domain/keymaps";
import { GUEST_FIELDS, HOST_FIELDS, type MetricsBatch, type MetricsCurrent } from "./domain/metrics";
import { FORWARD_LIMIT, networkFirewall, networkForward } from "./domain/network-rules";
import { diskFormat, guestSpecSchema, imageBytes, imageFileName, mac, metricFields, passphrase, poolName, snapshotName, volumeId } from "./domain/validation";

/** The version of this protocol. The web and its agents must speak the same one. */
export const AGENT_PROTOCOL_VERSION = 2;

// --- Requests: what the agent parses (each schema's description names it in a refusal) ---

/** An image on a host: a storage folder's name and a file name in it, never a path. */
export const imageRef = z.strictObject({ pool: poolName, file: imageFileName });
const guestSpecRequest = guestSpecSchema.describe("The guest spec");
/** A disk to plug in, checked with the very schema of a spec's disks. */
const attachRequest = z.strictObject({ disk: guestSpecSchema.shape.disks.element }).describe("The disk");
/** A network card to plug in, checked with the very schema of a spec's cards. */
const plugNicRequest = z.strictObject({ nic: guestSpecSchema.shape.nics.element }).describe("The network card");
const typeRequest = z
  .strictObject({
    text: z
      .string()
      .min(1, "There is no text to type.")
      .max(PASTE_MAX_CHARS, `A paste can type at most ${PASTE_MAX_CHARS.toLocaleString("en")} characters at once; split the text.`),
    layout: z.enum(KEYBOARD_LAYOUTS),
  })
  .describe("The text to type");
const screenshotQuery = z
  .strictObject({
    width: z
      .string()
      .regex(/^\d{1,5}$/, "width must be a number of pixels.")
      .transform(Number)
      .pipe(z.number().int().min(16, "width must be at least 16 pixels.").max(SCREENSHOT_MAX_WIDTH, `width must be at most ${SCREENSHOT_MAX_WIDTH} pixels.`))
      .default(THUMBNAIL_WIDTH),
  })
  .describe("The screenshot request");
/** `formats`: "<pool>/<file>" of each registered disk, read in that format rather than probed. */
const listRequest = z.strictObject({ formats: z.record(z.string().max(300), diskFormat) }).describe("The list request");
const createImageRequest = z
  .strictObject({
    pool: poolName,
    file: imageFileName,
    format: z.enum(NEW_DISK_FORMATS),
    bytes: imageBytes,
    volume: volumeId,
    passphrase: passphrase.optional(),
  })
  .describe("The image request");
const cloneRequest = z.strictObject({ to: imageRef, format: diskFormat, mode: z.enum(["full", "linked"]) }).describe("The clone request");
/** `sourceFormat`: the format the disk was registered with; never guessed from the file. */
const convertRequest = z
  .strictObject({ to: imageRef, format: diskFormat, sourceFormat: diskFormat, volume: volumeId.optional() })
  .describe("The convert request");
const resizeRequest = z
  .strictObject({ format: diskFormat, bytes: imageBytes, shrink: z.boolean(), volume: volumeId.optional() })
  .describe("The resize request");
const snapshotRequest = z
  .strictObject({ format: diskFormat, op: z.enum(["create", "revert", "delete"]), name: snapshotName, volume: volumeId.optional() })
  .describe("The snapshot request");
const checkRequest = z.strictObject({ format: diskFormat }).describe("The check request");
const uploadQuery = z
  .strictObject({
    size: z.string().regex(/^\d{1,16}$/, "size must be a number of bytes.").transform(Number),
    offset: z.string().regex(/^\d{1,16}$/, "offset must be a number of bytes.").transform(Number).default(0),
  })
  .describe("The upload request");

// --- Replies: what the client checks ---

/** The version reply: the one shape every protocol version keeps, so any web can read any agent's. */
const versionReply = z.object({ protocol: z.number().int() });
const port = z.number().int().min(1).max(65535);
/** A guest's card on a managed network and the addresses seen for it (server/agent/networks/watch.ts). */
const nicAddressesReply = z.object({
  mac: z.string(),
  network: z.string(),
  ipv4: z.array(z.string()),
  ipv6: z.array(z.string()),
}) satisfies z.ZodType<NicAddresses>;
const guestStatusReply = z.object({
  id: z.string(),
  state: z.enum(GUEST_STATES),
  since: z.number(),
  pid: z.number().int().nullable(),
  logTail: z.string().nullable(),
  argv: z.array(z.string()).nullable(),
  spec: guestSpecSchema.nullable(),
  haltReason: z.string().nullable().optional(),
  vncTls: z.object({ host: z.string(), port }).nullable().optional(),
  addresses: z.array(nicAddressesReply).optional(),
}) satisfies z.ZodType<GuestStatus>;
const nativeVncPasswordReply = z.object({
  password: z.string().min(1),
  host: z.string(),
  port,
  expiresInSeconds: z.number().int().positive(),
}) satisfies z.ZodType<NativeVncPassword>;
const hostInfoReply = z.object({
  hostname: z.string(),
  accelerator: z.enum(["kvm", "tcg"]),
  acceleratorReason: z.string(),
  qemuVersion: z.string(),
  isos: z.array(z.object({ name: z.string(), sizeBytes: z.number() })),
  pools: z.array(z.object({ name: z.string(), content: z.enum(["images", "isos"]), totalBytes: z.number(), freeBytes: z.number() })),
  forwards: z.object({ address: z.string(), firstPort: z.number().int(), lastPort: z.number().int() }),
}) satisfies z.ZodType<HostInfo>;
const uploadPartReply = z.object({
  pool: z.string(),
  file: z.string(),
  bytes: z.number(),
  modifiedAt: z.number(),
  expiresAt: z.number(),
  uploading: z.boolean(),
}) satisfies z.ZodType<UploadPart>;
const imageInfoReply = z.object({
  pool: z.string(),
  file: z.string(),
  format: z.string(),
  virtualBytes: z.number(),
  actualBytes: z.number(),
  encrypted: z.boolean(),
  backing: z.array(z.string()),
  snapshots: z.array(z.object({ id: z.string(), name: z.string(), date: z.number(), vmStateBytes: z.number() })),
  dirty: z.boolean(),
  raw: z.record(z.string(), z.unknown()),
}) satisfies z.ZodType<ImageInfo>;
/** Every image file, with qemu-img's facts or why they could not be read. */
const imageListReply = z.array(z.union([imageInfoReply, z.object({ pool: z.string(), file: z.string(), error: z.string() })]));
const taskStatusReply = z.object({
  id: z.string(),
  kind: z.enum(TASK_KINDS),
  title: z.string(),
  targets: z.array(z.string()),
  state: z.enum(TASK_STATES),
  progress: z.number().nullable(),
  startedAt: z.number(),
  finishedAt: z.number().nullable(),
  message: z.string().nullable(),
  log: z.array(z.string()),
}) satisfies z.ZodType<TaskStatus>;
/**
 * A guest's cards on managed networks with their addresses, whenever they change (a DHCP
 * acknowledgement, a neighbour seen, the guest started or stopped): `nics: []` once it has
 * none. An agent of the same protocol version without managed networks never sends one;
 * a client that does not know the line skips it.
 */
const addressesLine = z.object({ addresses: z.object({ guest: z.string(), nics: z.array(nicAddressesReply) }) });
/**
 * One line of the event stream: a guest's status, an image task's, a guest's addresses on
 * managed networks, or `{ synced: true }` once the statuses of every supervised guest (and
 * the addresses known of them) have been sent (those not sent are stopped).
 */
export const eventLine = z.union([guestStatusReply, z.object({ task: taskStatusReply }), addressesLine, z.object({ synced: z.literal(true) })]);
export type AddressesLine = z.infer<typeof addressesLine>["addresses"];
/** A managed network (server/agent/networks/): its id names its folder, table and bridge. */
const networkId = z.string().regex(/^[a-z0-9]{1,40}$/, "A network's id is 1 to 40 lowercase letters and digits.");
const ipv4Text = z.string().max(15);
const dnsLabel = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const routedNetworkRequest = z.strictObject({
  kind: z.enum(["nat", "isolated"]),
  subnet: z.string().max(18),
  dhcp: z.union([z.literal("auto"), z.null(), z.strictObject({ start: ipv4Text, end: ipv4Text })]),
  domain: z
    .string()
    .max(253)
    .refine((d) => d.split(".").every((l) => dnsLabel.test(l)), "A domain is dot-separated labels of lowercase letters, digits and '-', such as lab.internal."),
  reservations: z.array(z.strictObject({ mac, ip: ipv4Text, name: z.string().regex(dnsLabel, "A host name is one label: lowercase letters, digits and '-'.") })).max(1024).optional(),
  firewall: networkFirewall.optional(),
  forwards: z.array(networkForward).max(FORWARD_LIMIT, `A network has at most ${FORWARD_LIMIT} port forwards.`).optional(),
  /** IPv6 too: a unique local /64 from the id (network-plan.ts planIpv6), router advertisements, SLAAC. */
  ipv6: z.boolean().optional(),
});
/** A bridged network: guests' taps join a bridge the host has (the agent makes and removes no bridge). */
const bridgedNetworkRequest = z.strictObject({
  kind: z.literal("bridged"),
  bridge: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$/, "A host bridge is named with 1 to 15 letters, digits, '.', '_' and '-', such as br0."),
});
const networkRequest = z.discriminatedUnion("kind", [routedNetworkRequest, bridgedNetworkRequest]).describe("The network");
const networkReply = z.object({
  id: z.string(),
  kind: z.enum(["nat", "isolated", "bridged"]),
  /** null: a bridged network (its addresses are the LAN's business). */
  subnet: z.string().nullable(),
  bridge: z.string(),
  gateway: z.string().nullable(),
  dhcp: z.object({ start: z.string(), end: z.string() }).nullable(),
  domain: z.string().nullable(),
  /** The IPv6 prefix ("fd…::/64"), or null without IPv6. */
  ipv6: z.string().nullable().optional(),
  dnsmasq: z.boolean(),
});
const leaseReply = z.object({ expires: z.number(), mac: z.string(), ip: z.string(), hostname: z.string().nullable() });
const findingReply = z.object({ id: z.string(), problem: z.string(), fix: z.string() });
const countersReply = z.object({
  rules: z.record(z.string(), z.object({ packets: z.number(), bytes: z.number() })),
  defaultIn: z.number(),
  defaultOut: z.number(),
  spoofed: z.number(),
});
const forwardTestRequest = z.strictObject({ protocol: z.enum(["tcp", "udp"]), hostPort: port }).describe("The forward to test");
const forwardTestReply = z.object({ answered: z.boolean(), message: z.string() });
export type NetworkState = z.infer<typeof networkReply>;
export type NetworkCounters = z.infer<typeof countersReply>;
export type NetworkRequest = z.infer<typeof networkRequest>;
export { networkId };

// --- Metrics (server/agent/metrics/) ---

const counter = z.number().nonnegative();
const guestSampleReply = metricFields(GUEST_FIELDS);
const hostSampleReply = metricFields(HOST_FIELDS);
const metricsBatchReply = z.object({
  boot: z.string(),
  intervalMs: z.number().int().positive(),
  ticks: z.array(z.object({ seq: z.number().int(), at: z.number(), host: hostSampleReply, guests: z.record(z.string(), guestSampleReply) })),
}) satisfies z.ZodType<MetricsBatch>;
const metricsCurrentReply = z.object({
  host: z.object({
    at: z.number(),
    cores: z.number().int().positive(),
    cpuBusySeconds: counter,
    memTotal: counter,
    memAvailable: counter,
    load: z.tuple([z.number(), z.number(), z.number()]),
    folders: z.array(z.object({ pool: z.string(), totalBytes: counter, freeBytes: counter })),
    pressureUnavailable: z.string().nullable(),
    sample: hostSampleReply,
  }),
  guests: z.array(
    z.object({
      id: z.string(),
      at: z.number(),
      vcpus: z.number().int().positive(),
      memory: counter,
      vcpuSeconds: z.array(counter),
      processSeconds: counter,
      rss: counter,
      guestMemory: z.object({ total: counter, free: counter, available: counter }).nullable(),
      disks: z.array(
        z.object({
          volume: z.string(),
          readBytes: counter,
          writeBytes: counter,
          readOps: counter,
          writeOps: counter,
          readSeconds: counter,
          writeSeconds: counter,
          allocatedBytes: counter.nullable(),
        }),
      ),
      nics: z.array(
        z.object({
          mac: z.string(),
          counters: z.object({ rxBytes: counter, txBytes: counter, rxPackets: counter, txPackets: counter, rxDropped: counter, txDropped: counter }).nullable(),
          why: z.string().optional(),
        }),
      ),
      pressure: z.object({ cpu: counter, memory: counter, io: counter }).nullable(),
      sample: guestSampleReply,
    }),
  ),
}) satisfies z.ZodType<MetricsCurrent>;
const metricsQuery = z
  .strictObject({
    boot: z.string().max(64).optional(),
    after: z.string().regex(/^\d{1,15}$/, "after must be a tick's number.").transform(Number).optional(),
  })
  .describe("The metrics query");
const liveQuery = z
  .strictObject({ after: z.string().regex(/^\d{1,15}$/, "after must be a time in ms since the epoch.").transform(Number).optional() })
  .describe("The live query");
const liveReply = z.array(z.object({ at: z.number(), sample: guestSampleReply }));

/** An error, from any route. */
export const errorReply = z.object({ code: z.string(), message: z.string(), detail: z.string().optional() });

/**
 * One route. A route without `reply` answers 204 with no body, unless it answers bytes,
 * an upgrade or a stream (below). A POST without `body` takes `{}` (whatever JSON it
 * carries is ignored).
 */
export interface AgentRoute {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** `:name` stands for one URL-encoded path segment. */
  path: `/v1/${string}`;
  /** The JSON request body, parsed by the agent. */
  body?: z.ZodType;
  /** The query parameters, parsed by the agent. */
  query?: z.ZodType;
  /** The JSON reply (each line of it, for `ndjson`), checked by the client. */
  reply?: z.ZodType;
  /** The reply is raw bytes of this content type. */
  bytes?: string;
  /** An HTTP Upgrade to this protocol name: the 101, then the raw byte stream. */
  upgrade?: string;
  /** The reply is a stream of JSON lines (NDJSON) that stays open. */
  ndjson?: true;
  /** The request body is a raw file, streamed (`Expect: 100-continue` waits until it is accepted). */
  rawBody?: true;
  /** The largest JSON body the agent reads (256 KiB unless given). */
  maxBodyBytes?: number;
  summary: string;
}

/** The whole API. Names are for code; the summaries say what each route does. */
export const AGENT_ROUTES = {
  version: { method: "GET", path: "/v1/version", reply: versionReply, summary: "{ protocol }: the protocol version this agent speaks, asked once per agent before anything else" },
  host: { method: "GET", path: "/v1/host", reply: hostInfoReply, summary: "HostInfo: accelerator and why, QEMU version, ISOs, storage folders, where port forwards may listen" },

  guests: { method: "GET", path: "/v1/guests", reply: z.array(guestStatusReply), summary: "GuestStatus[] of every supervised guest (one call per host), each with its addresses on managed networks" },
  guest: { method: "GET", path: "/v1/guests/:id", reply: guestStatusReply, summary: "GuestStatus, with its addresses on managed networks" },
  argv: { method: "POST", path: "/v1/guests/:id/argv", body: guestSpecRequest, reply: z.object({ argv: z.array(z.string()) }), summary: "GuestSpec → { argv }: the command line it would run" },
  start: { method: "POST", path: "/v1/guests/:id/start", body: guestSpecRequest, reply: guestStatusReply, summary: "GuestSpec → GuestStatus, once QMP answers" },
  shutdown: { method: "POST", path: "/v1/guests/:id/shutdown", reply: guestStatusReply, summary: "the ACPI power button" },
  reboot: { method: "POST", path: "/v1/guests/:id/reboot", body: guestSpecRequest, reply: guestStatusReply, summary: "GuestSpec → the ACPI power button, then a start with that spec" },
  reset: { method: "POST", path: "/v1/guests/:id/reset", reply: guestStatusReply, summary: "a hard reset" },
  pause: { method: "POST", path: "/v1/guests/:id/pause", reply: guestStatusReply, summary: "stop the vCPUs" },
  resume: { method: "POST", path: "/v1/guests/:id/resume", reply: guestStatusReply, summary: "continue them" },
  forceOff: { method: "POST", path: "/v1/guests/:id/force-off", reply: guestStatusReply, summary: "quit, then SIGKILL" },
  setLink: { method: "POST", path: "/v1/guests/:id/nics/:index/link", body: z.strictObject({ up: z.boolean() }).describe("The link"), summary: "{ up } → a network card's link set up or down (QMP set_link) while the guest runs" },
  restart: { method: "POST", path: "/v1/guests/:id/restart", body: guestSpecRequest, reply: guestStatusReply, summary: "GuestSpec → force off a guest QEMU has halted, then a start with that spec" },
  forget: { method: "DELETE", path: "/v1/guests/:id", summary: "forget a stopped guest's state folder" },
  attachDisk: { method: "POST", path: "/v1/guests/:id/disks", body: attachRequest, reply: guestStatusReply, summary: "{ disk: DiskSpec } → GuestStatus: plug a disk into the running guest" },
  detachDisk: { method: "DELETE", path: "/v1/guests/:id/disks/:volume", reply: guestStatusReply, summary: "→ GuestStatus: unplug it (waits until the guest lets go)" },
  plugNic: { method: "POST", path: "/v1/guests/:id/nics", body: plugNicRequest, reply: guestStatusReply, summary: "{ nic: NicSpec } → GuestStatus: plug a network card into the running guest (a managed one gets its port and tap)" },
  unplugNic: { method: "DELETE", path: "/v1/guests/:id/nics/:mac", reply: guestStatusReply, summary: "→ GuestStatus: unplug the card with this MAC (waits until the guest lets go; its port and tap go)" },
  events: {
    method: "GET",
    path: "/v1/events",
    reply: eventLine,
    ndjson: true,
    summary:
      "GuestStatus lines for every supervised guest at once, { addresses: { guest, nics } } for each guest with cards on managed networks, then { synced: true }, then each change as it happens; { task: TaskStatus } lines for image tasks; an empty line every 15 s",
  },

  vnc: {
    method: "GET",
    path: "/v1/guests/:id/vnc",
    upgrade: AGENT_VNC_UPGRADE,
    summary: "the raw VNC byte stream; the 101 carries the one-time VNC password (header Guesthouse-Vnc-Password)",
  },
  serial: { method: "GET", path: "/v1/guests/:id/serial", upgrade: AGENT_SERIAL_UPGRADE, summary: "the raw serial port, shared by all viewers" },
  serialLog: { method: "GET", path: "/v1/guests/:id/serial-log", bytes: "text/plain; charset=utf-8", summary: "everything kept of the serial port's output (also of stopped guests)" },
  screenshot: { method: "GET", path: "/v1/guests/:id/screenshot", query: screenshotQuery, bytes: "image/png", summary: "?width=N (≤ 640, default 320): the guest's screen" },
  type: { method: "POST", path: "/v1/guests/:id/type", body: typeRequest, reply: taskStatusReply, summary: "{ text, layout } → 202 TaskStatus: paste as keystrokes" },
  vncTlsPassword: {
    method: "POST",
    path: "/v1/guests/:id/vnc-tls-password",
    reply: nativeVncPasswordReply,
    summary: "a one-time password for a native viewer on the guest's TLS VNC display (GUESTHOUSE_VNC_TLS=on; 409 when the guest has none)",
  },
  tlsCa: { method: "GET", path: "/v1/tls/ca", bytes: "application/x-pem-file", summary: "the host's TLS VNC CA certificate (public; 404 when TLS VNC is off)" },

  metrics: { method: "GET", path: "/v1/metrics", query: metricsQuery, reply: metricsBatchReply, summary: "?boot=&after=N → MetricsBatch: the regular ticks (every running guest's sample and the host's) after tick N of that boot; all kept (the last hour) otherwise" },
  metricsCurrent: { method: "GET", path: "/v1/metrics/current", reply: metricsCurrentReply, summary: "MetricsCurrent: every running guest's cumulative counters (per vCPU, disk, NIC) and latest sample, and the host's" },
  metricsLive: { method: "GET", path: "/v1/metrics/guests/:id/live", query: liveQuery, reply: liveReply, summary: "?after=ms → a running guest's samples since then, read every second while asked for (the watch lasts 30 s after each ask)" },

  networks: { method: "GET", path: "/v1/networks", reply: z.array(networkReply), summary: "every managed network: its plan, bridge and whether its dnsmasq runs" },
  applyNetwork: { method: "PUT", path: "/v1/networks/:id", body: networkRequest, reply: networkReply, summary: "make a managed network or bring it in line (bridge, nft table, dnsmasq); undone if a step fails" },
  removeNetwork: { method: "DELETE", path: "/v1/networks/:id", summary: "remove a managed network and all it had (bridge, table, dnsmasq, leases)" },
  networkLeases: { method: "GET", path: "/v1/networks/:id/leases", reply: z.array(leaseReply), summary: "the DHCP leases of a network's guests (MAC, address, host name, expiry)" },
  networkDoctor: { method: "GET", path: "/v1/network-doctor", reply: z.array(findingReply), summary: "what on this host would stop managed networks, each with its fix" },
  networkCounters: { method: "GET", path: "/v1/networks/:id/counters", reply: countersReply, summary: "what each firewall rule, the defaults and the spoofing checks of a network matched (packets, bytes)" },
  testForward: { method: "POST", path: "/v1/networks/:id/forwards/test", body: forwardTestRequest, reply: forwardTestReply, summary: "{ protocol, hostPort } → whether the guest answered a connection from the host to that forward" },

  tasks: { method: "GET", path: "/v1/tasks", reply: z.array(taskStatusReply), summary: "running and recent tasks (image operations, pastes)" },
  task: { method: "GET", path: "/v1/tasks/:id", reply: taskStatusReply, summary: "TaskStatus" },
  cancelTask: { method: "POST", path: "/v1/tasks/:id/cancel", reply: taskStatusReply, summary: "stop a running task; what an image task wrote is removed" },

  // `format`, `sourceFormat`: the format a disk was registered in; an image is never opened by a guess.
  listImages: {
    method: "POST",
    path: "/v1/images/list",
    body: listRequest,
    reply: imageListReply,
    // The disks page's list of registered formats: about 50 bytes a disk.
    maxBodyBytes: 4 * 1024 * 1024,
    summary: "ImageInfo (or why not) of every image in every image folder, the registered disks read in their format",
  },
  createImage: { method: "POST", path: "/v1/images", body: createImageRequest, reply: imageInfoReply, summary: "→ 201 ImageInfo: a new sparse image; with a passphrase, LUKS-encrypted qcow2" },
  image: { method: "GET", path: "/v1/images/:pool/:file", reply: imageInfoReply, summary: "qemu-img info; ?format= a registered disk's format (else probed)" },
  deleteImage: { method: "DELETE", path: "/v1/images/:pool/:file", summary: "?volume= also removes its passphrase; refused while in use" },
  cloneImage: { method: "POST", path: "/v1/images/:pool/:file/clone", body: cloneRequest, reply: taskStatusReply, summary: "→ 201 TaskStatus (done): a full copy, or linked" },
  convertImage: { method: "POST", path: "/v1/images/:pool/:file/convert", body: convertRequest, reply: taskStatusReply, summary: "→ 202 TaskStatus (running)" },
  resizeImage: { method: "POST", path: "/v1/images/:pool/:file/resize", body: resizeRequest, reply: imageInfoReply, summary: "ImageInfo (live when a guest runs it)" },
  snapshot: { method: "POST", path: "/v1/images/:pool/:file/snapshots", body: snapshotRequest, reply: imageInfoReply, summary: "ImageInfo (live when a guest runs it)" },
  checkImage: { method: "POST", path: "/v1/images/:pool/:file/check", body: checkRequest, reply: z.object({ ok: z.boolean(), report: z.string() }), summary: "qemu-img check" },

  uploadParts: { method: "GET", path: "/v1/uploads", reply: z.array(uploadPartReply), summary: "interrupted uploads, with when each expires" },
  uploadOffset: { method: "GET", path: "/v1/uploads/:pool/:file", reply: z.object({ offset: z.number() }), summary: "the bytes an interrupted upload has" },
  upload: {
    method: "PUT",
    path: "/v1/uploads/:pool/:file",
    query: uploadQuery,
    rawBody: true,
    reply: z.object({ sha256: z.string(), sizeBytes: z.number(), format: z.string() }),
    summary: "?size=N&offset=M, the raw file → 201; with Expect: 100-continue, the 100 comes once the upload is accepted",
  },
  cancelUpload: { method: "DELETE", path: "/v1/uploads/:pool/:file", summary: "stop an upload and remove what it wrote" },
  deleteIso: { method: "DELETE", path: "/v1/isos/:name", summary: "remove an ISO image" },
} as const satisfies Record<string, AgentRoute>;

export type AgentRoutes = typeof AGENT_ROUTES;
export type AgentRouteName = keyof AgentRoutes;

type ParamNames<P extends string> = P extends `${string}:${infer Name}/${infer Rest}` ? Name | ParamNames<Rest> : P extends `${string}:${infer Name}` ? Name : never;
/** A route's path parameters by name: `/v1/images/:pool/:file` → `{ pool, file }`. */
export type PathParams<R extends AgentRoute> = { [K in ParamNames<R["path"]>]: string };
/** What a client sends as a route's body. */
export type RequestOf<R extends AgentRoute> = R extends { body: infer B extends z.ZodType } ? z.input<B> : undefined;
/** What the agent's handler receives, once parsed. */
export type ParsedRequestOf<R extends AgentRoute> = R extends { body: infer B extends z.ZodType } ? z.output<B> : undefined;
/** What the agent sends as a route's reply (null: 204). */
export type ReplyOf<R extends AgentRoute> = R extends { reply: infer S extends z.ZodType } ? z.input<S> : null;
/** What the client gets, once checked (undefined: 204). */
export type CheckedReplyOf<R extends AgentRoute> = R extends { reply: infer S extends z.ZodType } ? z.output<S> : undefined;

/** The path of a request to `route` (each parameter URL-encoded). */
export function pathOf<R extends AgentRoute>(route: R, params: PathParams<R>): string {
  return route.path.replace(/:([A-Za-z]+)/g, (_, name: string) => encodeURIComponent((params as Record<string, string>)[name]!));
}

/**
 * The parameters of `pathname` if it is `route`'s path, else null. A segment that is
 * not valid URL encoding is kept as it came (the route's own check of it refuses it).
 */
export function matchPath<R extends AgentRoute>(route: R, pathname: string): PathParams<R> | null {
  const { pattern, names } = patternOf(route.path);
  const match = pattern.exec(pathname);
  if (!match) return null;
  return Object.fromEntries(names.map((name, i) => [name, decodeSegment(match[i + 1]!)])) as PathParams<R>;
}

const patterns = new Map<string, { pattern: RegExp; names: string[] }>();
function patternOf(path: string): { pattern: RegExp; names: string[] } {
  let compiled = patterns.get(path);
  if (!compiled) {
    const names: string[] = [];
    const pattern = new RegExp(`^${path.replace(/:([A-Za-z]+)/g, (_, name: string) => (names.push(name), "([^/]+)"))}$`);
    patterns.set(path, (compiled = { pattern, names }));
  }
  return compiled;
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
