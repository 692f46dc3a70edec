/**
 * The domain's words, in one place. Every other module (agent, web, UI) imports
 * these names instead of spelling string literals of its own.
 */

/** The states a guest can be in, as the agent sees its QEMU process. */
export const GUEST_STATES = [
  "stopped", // no QEMU process
  "starting", // QEMU spawned, QMP not ready yet
  "running", // QMP says the VM runs
  "paused", // paused by a person (QMP stop); QEMU lives
  "shutting-down", // ACPI power-down requested or force-off in progress
  "crashed", // QEMU exited without being asked to
  // QEMU lives but has stopped the vCPUs itself (QMP STOP that nobody asked for, then
  // query-status says why). None of these is "running": the guest does nothing until
  // someone acts.
  "internal-error", // the hypervisor could not run the guest's code (KVM internal error)
  "guest-panicked", // the guest's kernel reported a panic (pvpanic)
  "io-error", // a disk operation failed (a full storage folder); resuming retries it
  "watchdog", // the guest's watchdog fired with the action "pause"
  "powered-off", // the guest powered off but QEMU stayed (started with -no-shutdown)
  "halted", // the vCPUs stopped for another reason (a debugger, another monitor)
] as const;
export type GuestState = (typeof GUEST_STATES)[number];

/** The states in which QEMU itself has stopped the vCPUs: the guest is stuck until someone acts. */
export const HALTED_STATES = ["internal-error", "guest-panicked", "io-error", "watchdog", "powered-off", "halted"] as const satisfies readonly GuestState[];
export type HaltedState = (typeof HALTED_STATES)[number];

export function isHalted(state: GuestState): state is HaltedState {
  return (HALTED_STATES as readonly GuestState[]).includes(state);
}

/** QEMU keeps running (and holds its disks) in these states. */
export function qemuLives(state: GuestState): boolean {
  return state !== "stopped" && state !== "crashed";
}

/**
 * QEMU's run state (QMP query-status) in the guest's words. `requested`: the agent
 * itself asked for the pause. Null: a passing state (a snapshot being saved or
 * loaded, a migration) that leaves the guest's state as it was.
 */
export function stateOfRunState(runState: string, requested: boolean): GuestState | null {
  switch (runState) {
    case "running":
      return "running";
    case "paused":
    case "prelaunch": // after a reset of a stopped VM
      return requested ? "paused" : "halted";
    case "internal-error":
    case "guest-panicked":
    case "io-error":
    case "watchdog":
      return runState;
    case "shutdown":
      return "powered-off";
    case "save-vm":
    case "restore-vm":
    case "finish-migrate":
    case "inmigrate":
    case "postmigrate":
    case "colo":
      return null;
    default: // "debug", "suspended", and whatever a later QEMU adds
      return "halted";
  }
}

/**
 * The agent's guest state machine: which state may follow which. The supervisor
 * refuses any other change, so a bug shows up as an error instead of a wrong badge.
 */
const LIVE_STATES = ["running", "paused", ...HALTED_STATES] as const;
/** A halted guest may be reset or resumed, halt for another reason, be forced off, or die. */
const fromHalted = (state: HaltedState): GuestState[] => [...LIVE_STATES.filter((s) => s !== state), "stopped", "crashed"];
const TRANSITIONS: Record<GuestState, readonly GuestState[]> = {
  stopped: ["starting"],
  crashed: ["starting"],
  // a start that fails ends in "stopped" (the error goes to the caller)
  starting: [...LIVE_STATES, "stopped", "crashed"],
  running: ["paused", ...HALTED_STATES, "shutting-down", "stopped", "crashed"],
  paused: ["running", ...HALTED_STATES, "shutting-down", "stopped", "crashed"],
  "shutting-down": [...HALTED_STATES, "stopped", "crashed"],
  "internal-error": fromHalted("internal-error"),
  "guest-panicked": fromHalted("guest-panicked"),
  "io-error": fromHalted("io-error"),
  watchdog: fromHalted("watchdog"),
  "powered-off": fromHalted("powered-off"),
  halted: fromHalted("halted"),
};

export function canTransition(from: GuestState, to: GuestState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** What a person may ask for in each state. Buttons and the agent both use this table. */
export const GUEST_ACTIONS = [
  "start",
  "shutdown", // ACPI power button
  "reboot", // ACPI power button, then start again (with any pending changes)
  "reset", // hard reset, like the reset button (a halted guest then runs again)
  "pause",
  "resume",
  "force-off",
  "restart", // force off, then start again (with any pending changes): for a guest QEMU has halted
  "console",
  "delete",
] as const;
export type GuestAction = (typeof GUEST_ACTIONS)[number];

/** A halted guest: look at its screen, reset it, or start it afresh. */
const HALTED_ACTIONS = ["reset", "force-off", "restart", "console"] as const satisfies readonly GuestAction[];

const ALLOWED: Record<GuestState, readonly GuestAction[]> = {
  stopped: ["start", "delete"],
  starting: ["force-off"],
  running: ["shutdown", "reboot", "reset", "pause", "force-off", "console"],
  paused: ["resume", "reset", "force-off", "console"],
  "shutting-down": ["force-off", "console"],
  crashed: ["start", "delete"],
  "internal-error": HALTED_ACTIONS,
  "guest-panicked": HALTED_ACTIONS,
  // Resuming retries the failed disk operation (after space was freed, say).
  "io-error": ["resume", ...HALTED_ACTIONS],
  watchdog: ["resume", ...HALTED_ACTIONS],
  // The screen of a machine that powered off shows nothing.
  "powered-off": ["reset", "force-off", "restart"],
  halted: ["resume", ...HALTED_ACTIONS],
};

/** The actions that change a guest's power state, each one agent call. */
export const POWER_ACTIONS = ["start", "shutdown", "reboot", "reset", "pause", "resume", "force-off", "restart"] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

/** After this long in "shutting-down", the page offers to force the guest off. */
export const SHUTDOWN_PATIENCE_MS = 60_000;

export function allowedActions(state: GuestState): readonly GuestAction[] {
  return ALLOWED[state];
}

export function canDo(state: GuestState, action: GuestAction): boolean {
  return ALLOWED[state].includes(action);
}

export type Accelerator = "kvm" | "tcg";

/** virtio-blk; SCSI on a virtio-scsi controller; IDE (AHCI/SATA on q35, IDE on pc). */
export const DISK_BUSES = ["virtio", "scsi", "ide"] as const;
export type DiskBus = (typeof DISK_BUSES)[number];

/**
 * Image formats `qemu-img` makes and converts: qcow2 (snapshots, backing files,
 * encryption), raw, and the formats other hypervisors use (VMware's vmdk, VirtualBox's
 * vdi, Virtual PC's and Hyper-V's vpc, the `.vhd` files, and Hyper-V's vhdx).
 */
export const DISK_FORMATS = ["qcow2", "raw", "vmdk", "vdi", "vpc", "vhdx"] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];

export function isDiskFormat(value: unknown): value is DiskFormat {
  return typeof value === "string" && (DISK_FORMATS as readonly string[]).includes(value);
}

/** The formats a new, empty image can be made in from the dashboard. */
export const NEW_DISK_FORMATS = ["qcow2", "raw"] as const satisfies readonly DiskFormat[];

/**
 * The formats a guest's QEMU opens. Images in the others (VMware's, VirtualBox's,
 * Hyper-V's) are converted to qcow2 before a guest may use them: their headers can name
 * other files (a VMDK's parent, its extents), and a guest can write into a VMDK's.
 */
export const GUEST_DISK_FORMATS = ["qcow2", "raw"] as const satisfies readonly DiskFormat[];
export type GuestDiskFormat = (typeof GUEST_DISK_FORMATS)[number];

export function isGuestDiskFormat(value: unknown): value is GuestDiskFormat {
  return typeof value === "string" && (GUEST_DISK_FORMATS as readonly string[]).includes(value);
}

/** The usual file name ending of each format. */
export const FORMAT_EXTENSIONS: Record<DiskFormat, string> = { qcow2: "qcow2", raw: "raw", vmdk: "vmdk", vdi: "vdi", vpc: "vhd", vhdx: "vhdx" };

/** QEMU's cache modes; "none" (O_DIRECT) is the safe default for images on local disks. */
export const DISK_CACHES = ["none", "writeback", "writethrough", "directsync", "unsafe"] as const;
export type DiskCache = (typeof DISK_CACHES)[number];

export const NIC_MODELS = ["virtio", "e1000", "rtl8139"] as const;
export type NicModel = (typeof NIC_MODELS)[number];

export const BOOT_DEVICES = ["cdrom", "disk", "network"] as const;
export type BootDevice = (typeof BOOT_DEVICES)[number];

export const MACHINE_TYPES = ["q35", "pc"] as const;
export type MachineType = (typeof MACHINE_TYPES)[number];

/** IDE disks and CD-ROMs a machine takes together: q35's AHCI has 6 ports; pc's IDE 2 × 2. */
export const IDE_SLOT_COUNT: Record<MachineType, number> = { q35: 6, pc: 4 };

/** SeaBIOS, or UEFI from Debian's OVMF with a variables file of the guest's own. */
export const FIRMWARES = ["bios", "uefi"] as const;
export type Firmware = (typeof FIRMWARES)[number];

export const DISPLAY_ADAPTERS = ["std", "virtio", "qxl"] as const;
export type DisplayAdapter = (typeof DISPLAY_ADAPTERS)[number];

export const RTC_BASES = ["utc", "localtime"] as const;
export type RtcBase = (typeof RTC_BASES)[number];

/**
 * Everything the agent needs to run one guest. The web builds it from the database;
 * the agent resolves the volume names to files inside its own folders, so the spec
 * never carries a host path.
 */
export interface GuestSpec {
  id: string;
  name: string;
  machine: MachineType;
  firmware: Firmware;
  /** All vCPUs; = sockets × cores × threads, with cores derived. */
  vcpus: number;
  sockets: number;
  threads: number;
  memoryMiB: number;
  disks: DiskSpec[];
  cdroms: CdromSpec[];
  nics: NicSpec[];
  /** Device kinds in the order the firmware tries them; kinds left out are not booted. */
  bootOrder: BootDevice[];
  /** Show the firmware's boot menu at this start (a one-time choice, not stored). */
  bootMenu?: boolean;
  display: DisplayAdapter;
  serial: boolean;
  rtc: RtcBase;
}

export interface DiskSpec {
  /** The disk's id on its host (keys its locks and its encryption secret). */
  volume: string;
  /** The storage folder (by name) and the image's file name in it; never a path. */
  pool: string;
  file: string;
  format: DiskFormat;
  /**
   * A linked clone's bases, nearest first, as the dashboard recorded them when it made
   * the clone; [] for a disk of its own. QEMU is given exactly these (a `-blockdev` graph
   * with `backing: null` below the last), never a name from an image's header.
   */
  backing: BackingImage[];
  /** A LUKS-encrypted qcow2: the agent hands QEMU the secret it keeps for this volume. */
  encrypted: boolean;
  bus: DiskBus;
  cache: DiskCache;
  readOnly: boolean;
}

/** A base image under a linked clone: a storage folder and a file, never a path. */
export interface BackingImage {
  pool: string;
  file: string;
  format: GuestDiskFormat;
}

export interface CdromSpec {
  /** The ISO's file name inside the agent's image folder. */
  iso: string;
}

export const FORWARD_PROTOCOLS = ["tcp", "udp"] as const;
export type ForwardProtocol = (typeof FORWARD_PROTOCOLS)[number];

/** A host port forwarded to a guest port through user-mode networking. */
export interface PortForward {
  protocol: ForwardProtocol;
  hostPort: number;
  guestPort: number;
}

/** What every network card has. */
interface NicBase {
  mac: string;
  model: NicModel;
}

/**
 * A network card: on QEMU's own user-mode networking (nothing on the host to set up), or
 * on a managed network of the agent (a tap on the network's bridge; its rules and port
 * forwards are the network's).
 */
export type NicSpec = UserNicSpec | ManagedNicSpec;

export interface UserNicSpec extends NicBase {
  mode: "user";
  /**
   * User-mode networking with restrict=on: the guest reaches neither the host (its
   * loopback services are otherwise at 10.0.2.2) nor the network; forwards into it work.
   */
  isolated: boolean;
  forwards: PortForward[];
}

export interface ManagedNicSpec extends NicBase {
  mode: "managed";
  /** The managed network's id on the guest's host. */
  network: string;
  /**
   * A bridged network's VLAN (1 to 4094) for this card's frames on a VLAN-filtering host
   * bridge: the tap's only VLAN, untagged towards the guest. Absent: the bridge's default.
   */
  vlan?: number;
  /** Its bandwidth limits; absent: none. */
  bandwidth?: NicBandwidth;
  isolated: false;
  forwards: never[];
}

/**
 * A card's bandwidth limits in Mbit/s, as its guest sees them: `in` what reaches the guest,
 * `out` what it sends. Either may be left out (no limit that way). Cards on managed networks
 * only: the agent polices them at the card's tap.
 */
export interface NicBandwidth {
  inMbit?: number;
  outMbit?: number;
}

/** The agent's view of one guest that it supervises. */
export interface GuestStatus {
  id: string;
  state: GuestState;
  /** When the guest entered this state (ms since the epoch, agent's clock). */
  since: number;
  pid: number | null;
  /** The last lines of QEMU's log when it crashed, failed to start, or halted the guest. */
  logTail: string | null;
  /** The argument array QEMU was started with (never shown with secrets). */
  argv: string[] | null;
  /** The spec QEMU was started with: compared with the stored one, it shows pending changes. */
  spec: GuestSpec | null;
  /** What QEMU said when it halted the guest itself (a disk error: which disk, doing what, why); absent otherwise. */
  haltReason?: string | null;
}

export interface HostInfo {
  hostname: string;
  accelerator: Accelerator;
  /** Why, in plain words: "KVM ran the test guest …", "KVM stopped with an emulation failure while running test code (…)", … */
  acceleratorReason: string;
  qemuVersion: string;
  isos: IsoInfo[];
  pools: PoolInfo[];
  /** Where guests' port forwards may listen on this host: this address, these ports. */
  forwards: { address: string; firstPort: number; lastPort: number };
}

/** What stays the same for as long as a host's agent runs: shown next to its guests. */
export type HostIdentity = Pick<HostInfo, "hostname" | "accelerator" | "acceleratorReason" | "qemuVersion">;

/** The storage folder every host has (`<data folder>/disks`), where new guests' disks go. */
export const DEFAULT_POOL = "default";
/** The folder of ISO images: also a storage folder, for uploads and listing. */
export const ISO_POOL = "isos";

/** A storage folder on a host. Its path stays on the host; pages name it by `name`. */
export interface PoolInfo {
  name: string;
  /** "images" holds disk images; "isos" holds ISO images for CD-ROMs. */
  content: "images" | "isos";
  totalBytes: number;
  freeBytes: number;
}

/** An interrupted upload kept for resuming: `<file>.part` in a storage folder. */
export interface UploadPart {
  pool: string;
  /** The name the upload will have once it is complete. */
  file: string;
  /** Bytes it has so far. */
  bytes: number;
  /** When it last grew (ms since the epoch). */
  modifiedAt: number;
  /** When the agent removes it unless it grows again before (GUESTHOUSE_UPLOAD_PART_HOURS). */
  expiresAt: number;
  /** An upload is writing it right now. */
  uploading: boolean;
}

/** What `qemu-img info` says about an image, in the dashboard's words. */
export interface ImageInfo {
  pool: string;
  file: string;
  format: string;
  virtualBytes: number;
  /** Allocated on the host's disk (sparse images use less than their virtual size). */
  actualBytes: number;
  encrypted: boolean;
  /** The backing chain, nearest first, as file names (a linked clone's base, …). */
  backing: string[];
  snapshots: SnapshotInfo[];
  /** qcow2 only: the image was not closed cleanly (a crashed writer); `qemu-img check` repairs. */
  dirty: boolean;
  /** The full report as `qemu-img info --output=json` printed it (paths stripped). */
  raw: Record<string, unknown>;
}

export interface SnapshotInfo {
  id: string;
  name: string;
  /** When it was taken, ms since the epoch. */
  date: number;
  /** Bytes of guest memory saved with it (0: a disk-only snapshot). */
  vmStateBytes: number;
}

/** Long operations on images (and typing a paste into a guest) are tasks: they report progress and can be cancelled. */
export const TASK_KINDS = ["create", "convert", "resize", "snapshot", "upload", "clone", "delete", "check", "attach", "detach", "paste"] as const;
export type TaskKind = (typeof TASK_KINDS)[number];

export const TASK_STATES = ["running", "succeeded", "failed", "cancelled"] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** The agent's view of one task. */
export interface TaskStatus {
  id: string;
  kind: TaskKind;
  /** What it works on, for people: "default/web.qcow2 → web.vmdk". */
  title: string;
  /** The images it holds ("pool/file"); another task on any of them is refused meanwhile. */
  targets: string[];
  state: TaskState;
  /** 0 … 1, or null when the operation cannot tell. */
  progress: number | null;
  startedAt: number;
  finishedAt: number | null;
  /** Why it failed, in plain words; or a short result ("grown to 20 GiB"). */
  message: string | null;
  /** The last lines the operation printed. */
  log: string[];
}

export interface IsoInfo {
  name: string;
  sizeBytes: number;
}

export interface ConsoleTicket {
  /** The secret the browser presents once; only its hash is stored. */
  ticket: string;
  guestId: string;
  userId: string;
  expiresAt: Date;
}

/** A console ticket lives this long: enough for the page to open the websocket. */
export const CONSOLE_TICKET_TTL_MS = 30_000;

/** The same-origin path the console websocket is served on (not a page route; see NOTES). */
export const CONSOLE_WS_PATH = "/ws/console";

/** The same-origin path browser uploads are served on (server/web/uploads.ts; no page route): PUT the file, GET how far an interrupted one got, DELETE to cancel. */
export const UPLOAD_PATH = "/upload";
/** The same uploads through the REST API (an API token instead of the session). */
export const API_UPLOAD_PATH = "/api/v1/uploads";

export const USER_ROLES = ["admin", "member"] as const;
export type UserRole = (typeof USER_ROLES)[number];

/** The HTTP Upgrade protocol name the agent uses to hand over a guest's raw VNC stream. */
export const AGENT_VNC_UPGRADE = "guesthouse-vnc";
/** The HTTP Upgrade protocol name for a guest's raw serial port stream (shared by every viewer). */
export const AGENT_SERIAL_UPGRADE = "guesthouse-serial";

// --- Guest console, agent side (issue 5) -----------------------------------------------------

/**
 * The 101 reply to a VNC upgrade carries the one-time VNC password in this header
 * (lowercase, as node reports headers). An empty value: the guest's display has no
 * password (its QEMU was started before passwords were used; a restart turns them on).
 */
export const AGENT_VNC_PASSWORD_HEADER = "guesthouse-vnc-password";

/** The most text one paste may type into a guest, in characters. */
export const PASTE_MAX_CHARS = 65_536;

/** Guest screenshots (thumbnails) are at most this wide, in pixels; the default is THUMBNAIL_WIDTH. */
export const SCREENSHOT_MAX_WIDTH = 640;
export const THUMBNAIL_WIDTH = 320;

// --- end of guest console, agent side --------------------------------------------------------

// --- Native viewers over the optional TLS VNC endpoint (issue 5; GUESTHOUSE_VNC_TLS, off by default) ---

/** Where a native viewer reaches a running guest's TLS VNC display. */
export interface VncTlsEndpoint {
  /** The name (or address) to connect to, one the host's certificate carries. */
  host: string;
  /** The guest's own TCP port. */
  port: number;
}

/** GuestStatus, continued (declaration merging keeps this optional feature in its own block). */
export interface GuestStatus {
  /** The guest's TLS VNC endpoint while its QEMU runs with one; absent or null otherwise. */
  vncTls?: VncTlsEndpoint | null;
}

/** A one-time password for a native viewer: set on the guest's TLS display only, it ends at its first use or after expiresInSeconds. */
export interface NativeVncPassword extends VncTlsEndpoint {
  password: string;
  expiresInSeconds: number;
}

// --- end of native viewers over TLS VNC ----------------------------------------------------

// --- Guests' addresses on managed networks (issue 15) ---------------------------------------

/**
 * A guest's card on a managed network and the addresses seen for it on the host, with no
 * agent in the guest: its DHCP lease and the bridge's neighbour table (link-local IPv6 left out).
 */
export interface NicAddresses {
  mac: string;
  /** The managed network's id on the guest's host. */
  network: string;
  ipv4: string[];
  ipv6: string[];
}

/** GuestStatus, continued. */
export interface GuestStatus {
  /** Each of its cards on a managed network, with the addresses known for it (none yet: empty lists); absent when not known. */
  addresses?: NicAddresses[];
}

/**
 * What a quota limits (server/web/quotas.ts): per team, and optionally per member within
 * it. vCPUs and memory count running guests only; disk bytes are virtual sizes.
 */
export const QUOTA_RESOURCES = ["guests", "vcpus", "memoryMiB", "diskBytes", "snapshots", "isoBytes", "tasks"] as const;
export type QuotaResource = (typeof QUOTA_RESOURCES)[number];
/** How a quota's amounts are written: counts, MiB of memory, or bytes. */
export const QUOTA_UNITS: Record<QuotaResource, "count" | "mib" | "bytes"> = {
  guests: "count",
  vcpus: "count",
  memoryMiB: "mib",
  diskBytes: "bytes",
  snapshots: "count",
  isoBytes: "bytes",
  tasks: "count",
};
export const QUOTA_LABELS: Record<QuotaResource, string> = {
  guests: "guests",
  vcpus: "vCPUs of running guests",
  memoryMiB: "memory of running guests",
  diskBytes: "disk space (virtual sizes)",
  snapshots: "snapshots",
  isoBytes: "ISO space",
  tasks: "tasks at once",
};
/** The facts of a quota refusal, for the page to offer "ask for more". */
export interface QuotaRefusal {
  teamId: string;
  resource: QuotaResource;
  /** "team": the team's limit refused; "user": the member's own limit within the team. */
  scope: "team" | "user";
  used: number;
  limit: number;
  /** What the refused change needed. */
  asked: number;
}
