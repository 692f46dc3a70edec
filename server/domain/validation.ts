/**
 * Input schemas, used once at each boundary: server actions parse form data with
 * them, the agent parses request bodies with them.
 */
import { z } from "zod";
import { GuesthouseError } from "./errors";
import { KEYBOARD_LAYOUTS } from "./keymaps";
import { THRESHOLD_MAX_MINUTES } from "./metrics";
import { assertUnicastMac } from "./network-plan";
import {
  BOOT_DEVICES,
  DISK_BUSES,
  DISK_CACHES,
  DISK_FORMATS,
  GUEST_DISK_FORMATS,
  DISPLAY_ADAPTERS,
  FIRMWARES,
  FORWARD_PROTOCOLS,
  IDE_SLOT_COUNT,
  MACHINE_TYPES,
  NIC_MODELS,
  RTC_BASES,
  type GuestSpec,
  type MachineType,
  type PortForward,
} from "./types";

export const GUEST_NAME_RULE =
  "1 to 63 characters: letters, digits, '.', '_' and '-', starting with a letter or digit";
const GUEST_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export const LIMITS = {
  vcpus: { min: 1, max: 64 },
  memoryMiB: { min: 16, max: 1024 * 1024 },
  diskGiB: { min: 1, max: 64 * 1024 },
} as const;

/** Volume ids and ISO names are resolved by the agent inside its own folders. */
const VOLUME_ID = /^[a-z0-9]{8,64}$/;
const ISO_NAME = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}\.iso$/;
const MAC = /^52:54:00(:[0-9a-f]{2}){3}$/;

/**
 * A file name inside a storage folder. Names are never paths: no separators, no
 * leading dot (so no "." or ".." and no hidden files), no control or shell-special
 * characters, and not the ".part" ending uploads use while they are incomplete. The
 * agent also refuses symlinks when it opens one (see server/agent/storage.ts).
 */
const IMAGE_FILE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
export const IMAGE_FILE_RULE = "1 to 128 characters: letters, digits, '.', '_', '+' and '-', starting with a letter or digit";
export const imageFileName = z
  .string()
  .regex(IMAGE_FILE, `An image name must be ${IMAGE_FILE_RULE}.`)
  .refine((name) => !name.endsWith(".part"), "An image name cannot end in .part (used for uploads in progress).");
/** One of the formats a disk can be in (as registered). */
export const diskFormat = z.enum(DISK_FORMATS);

/** The most base images under one linked clone (a clone of a template made from a clone …). */
export const MAX_BACKING_IMAGES = 4;

/** A storage folder's name, as the admin configured it. */
export const poolName = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, "A storage folder's name is 1 to 32 lowercase letters, digits, '_' or '-'.");

export const guestName = z.string().trim().regex(GUEST_NAME, `A guest name must be ${GUEST_NAME_RULE}.`);
export const isoName = z.string().regex(ISO_NAME, "An ISO name is a plain file name ending in .iso.");
export const volumeId = z.string().regex(VOLUME_ID, "A volume id is 8 to 64 lowercase letters and digits.");
/**
 * A card's MAC: QEMU's locally administered 52:54:00 prefix, lowercase. A multicast or
 * all-zero address is refused saying so (assertUnicastMac), not only as the wrong shape.
 */
export const mac = z
  .string()
  .superRefine((text, ctx) => {
    if (!/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(text)) return;
    try {
      assertUnicastMac(text.toLowerCase());
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message, abort: true });
    }
  })
  .regex(MAC, "A MAC address looks like 52:54:00:12:34:56 (lowercase).");

/**
 * A whole number within limits. Form fields arrive as text, so `fromText` also takes
 * a string of digits; agent requests are JSON and must send real numbers. Nothing
 * else is coerced: "", null, true and "0x10" are refused, not read as 0, 1 or 16.
 */
function intIn(what: string, min: number, max: number, unit = "", fromText = false) {
  const number = z
    .number({ error: `${what} must be a number.` })
    .int(`${what} must be a whole number.`)
    .min(min, `${what} must be at least ${min}${unit}.`)
    .max(max, `${what} must be at most ${max}${unit}.`);
  if (!fromText) return number;
  const text = z
    .string()
    .trim()
    .regex(/^-?\d{1,15}$/, `${what} must be a whole number.`)
    .transform(Number);
  return z.union([z.number(), text], { error: `${what} must be a whole number.` }).pipe(number);
}

export const vcpus = intIn("vCPUs", LIMITS.vcpus.min, LIMITS.vcpus.max);
export const memoryMiB = intIn("Memory", LIMITS.memoryMiB.min, LIMITS.memoryMiB.max, " MiB");
export const diskGiB = intIn("Disk size", LIMITS.diskGiB.min, LIMITS.diskGiB.max, " GiB");

export const LIMITS_DEVICES = { disks: 8, cdroms: 4, nics: 8, forwards: 16 } as const;

const portNumber = (what: string, min: number) => intIn(what, min, 65535);
const portForward = z.strictObject({
  protocol: z.enum(FORWARD_PROTOCOLS),
  hostPort: portNumber("A host port", 1024),
  guestPort: portNumber("A guest port", 1),
});

/**
 * A team's network by name: "user" (QEMU's user-mode networking, every team has it) or a
 * managed network of the team. Lowercase letters, digits and '-', as in a host name.
 */
export const NETWORK_NAME_RULE = "1 to 32 lowercase letters, digits and '-', starting and ending with a letter or digit";
export const networkName = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/, `A network's name is ${NETWORK_NAME_RULE}.`);
/** The user-mode network's name: a card without a network is on it. */
export const USER_NETWORK = "user";
/** A card's network; left out (an older definition or form): user-mode. */
const nicNetwork = networkName.optional();

/** A card's VLAN on a bridged network's VLAN-filtering bridge: 1 to 4094 (left out: the bridge's default). */
const VLAN_RULE = "A VLAN id is a whole number from 1 to 4094.";
export const vlanId = z.number({ error: VLAN_RULE }).int(VLAN_RULE).min(1, VLAN_RULE).max(4094, VLAN_RULE);
const nicVlan = vlanId.optional();
export const BANDWIDTH_RULE = "a whole number of Mbit/s from 1 to 100000";
const mbit = z.number({ error: `A bandwidth limit is ${BANDWIDTH_RULE}.` }).int(`A bandwidth limit is ${BANDWIDTH_RULE}.`).min(1, `A bandwidth limit is ${BANDWIDTH_RULE}.`).max(100_000, `A bandwidth limit is ${BANDWIDTH_RULE}.`);
/** A card's bandwidth limits (NicBandwidth); left out: none. */
const nicBandwidth = z.strictObject({ inMbit: mbit.optional(), outMbit: mbit.optional() }).optional();

/** A card isolated from the host and the network (restrict=on); left out (an older spec or definition): not isolated. */
const isolated = z.boolean().default(false);

/** How a disk is attached: the same in the spec, the edit form and the definition. */
const diskAttachment = { bus: z.enum(DISK_BUSES), cache: z.enum(DISK_CACHES), readOnly: z.boolean() };
const forwards = z
  .array(portForward)
  .max(LIMITS_DEVICES.forwards, `A network card has at most ${LIMITS_DEVICES.forwards} port forwards.`);
const listOf = <T extends z.ZodType>(item: T, max: number, what: string) =>
  z.array(item).max(max, `A guest has at most ${max} ${what}.`);
const cdroms = listOf(z.strictObject({ iso: isoName }), LIMITS_DEVICES.cdroms, "CD-ROMs");
const description = z.string().max(2000, "The description is at most 2,000 characters.");

/** The parts of a guest's hardware that a person edits, shared by the spec and the definition. */
const hardwareShape = {
  machine: z.enum(MACHINE_TYPES),
  firmware: z.enum(FIRMWARES),
  vcpus,
  sockets: intIn("Sockets", 1, LIMITS.vcpus.max),
  threads: intIn("Threads per core", 1, 8),
  memoryMiB,
  bootOrder: z.array(z.enum(BOOT_DEVICES)).max(BOOT_DEVICES.length),
  display: z.enum(DISPLAY_ADAPTERS),
  serial: z.boolean(),
  rtc: z.enum(RTC_BASES),
};

/**
 * Checks that hold across fields: the vCPU topology divides, IDE slots suffice, MACs
 * and forwarded host ports are unique, each boot kind is named once.
 */
function checkHardware(
  hw: {
    machine: MachineType;
    vcpus: number;
    sockets: number;
    threads: number;
    bootOrder: string[];
    disks: Array<{ bus: string; readOnly: boolean }>;
    cdroms: unknown[];
    nics: Array<{ mac?: string; forwards: PortForward[]; network?: string; isolated?: boolean; vlan?: number; bandwidth?: { inMbit?: number; outMbit?: number } }>;
  },
  ctx: z.RefinementCtx,
): void {
  if (hw.vcpus % (hw.sockets * hw.threads) !== 0) {
    ctx.addIssue({
      code: "custom",
      path: ["vcpus"],
      message: `${hw.vcpus} vCPUs cannot be split into ${hw.sockets} socket(s) with ${hw.threads} thread(s) per core: vCPUs must be a multiple of sockets × threads.`,
    });
  }
  const ide = hw.disks.filter((d) => d.bus === "ide").length + hw.cdroms.length;
  if (ide > IDE_SLOT_COUNT[hw.machine]) {
    ctx.addIssue({
      code: "custom",
      path: ["disks"],
      message: `A ${hw.machine} guest has ${IDE_SLOT_COUNT[hw.machine]} IDE slots for disks and CD-ROMs together, not ${ide}. Put disks on virtio or SCSI.`,
    });
  }
  if (hw.disks.some((d) => d.bus === "ide" && d.readOnly)) {
    ctx.addIssue({
      code: "custom",
      path: ["disks"],
      message: "QEMU cannot attach a read-only disk to IDE. Put read-only disks on virtio or SCSI.",
    });
  }
  if (new Set(hw.bootOrder).size !== hw.bootOrder.length) {
    ctx.addIssue({ code: "custom", path: ["bootOrder"], message: "Name each boot device kind at most once." });
  }
  const macs = hw.nics.map((n) => n.mac).filter((m): m is string => Boolean(m));
  if (new Set(macs).size !== macs.length) {
    ctx.addIssue({ code: "custom", path: ["nics"], message: "Two network cards have the same MAC address." });
  }
  const ports = hw.nics.flatMap((n) => n.forwards.map((f) => `${f.protocol}/${f.hostPort}`));
  if (new Set(ports).size !== ports.length) {
    ctx.addIssue({ code: "custom", path: ["nics"], message: "A host port is forwarded twice." });
  }
  hw.nics.forEach((n, i) => {
    if (n.network === undefined || n.network === USER_NETWORK) {
      if (n.vlan !== undefined) ctx.addIssue({ code: "custom", path: ["nics", i, "vlan"], message: `Network card ${i + 1} is on user-mode networking: a VLAN tag is for a card on a bridged network.` });
      if (n.bandwidth?.inMbit !== undefined || n.bandwidth?.outMbit !== undefined) {
        ctx.addIssue({ code: "custom", path: ["nics", i, "bandwidth"], message: `Network card ${i + 1} is on user-mode networking, which cannot be limited: put it on a managed network to limit its bandwidth.` });
      }
      return;
    }
    if (n.forwards.length) {
      ctx.addIssue({ code: "custom", path: ["nics", i, "forwards"], message: `Network card ${i + 1} is on the managed network ${n.network}: forward ports to it with the network's port forwards, not the card's.` });
    }
    if (n.isolated) {
      ctx.addIssue({ code: "custom", path: ["nics", i, "isolated"], message: `Network card ${i + 1} is on the managed network ${n.network}: its rules decide what it reaches; "isolated" is for user-mode cards.` });
    }
  });
}

export const guestSpecSchema = z
  .strictObject({
    id: volumeId,
    name: guestName,
    ...hardwareShape,
    disks: listOf(
      z.strictObject({
        volume: volumeId,
        pool: poolName,
        file: imageFileName,
        format: diskFormat,
        // Absent in the spec.json of a guest an earlier agent started: a disk of its own.
        backing: z
          .array(z.strictObject({ pool: poolName, file: imageFileName, format: z.enum(GUEST_DISK_FORMATS) }))
          .max(MAX_BACKING_IMAGES, `A linked clone sits on at most ${MAX_BACKING_IMAGES} base images.`)
          .default([]),
        encrypted: z.boolean(),
        ...diskAttachment,
      }),
      LIMITS_DEVICES.disks,
      "disks",
    ),
    cdroms,
    nics: listOf(
      // By mode, so a refusal names the field of the card's own kind (its VLAN, say).
      z.discriminatedUnion("mode", [
        z.strictObject({ mac, model: z.enum(NIC_MODELS), mode: z.literal("user"), isolated, forwards }),
        // On a managed network: its ports and rules are the network's; QEMU forwards nothing.
        z.strictObject({
          mac,
          model: z.enum(NIC_MODELS),
          mode: z.literal("managed"),
          network: z.string().regex(/^[a-z0-9]{1,40}$/, "A network's id is 1 to 40 lowercase letters and digits."),
          vlan: nicVlan,
          bandwidth: nicBandwidth,
          isolated: z.literal(false).default(false),
          forwards: z.array(z.never()).max(0).default([]),
        }),
      ]),
      LIMITS_DEVICES.nics,
      "network cards",
    ),
    bootMenu: z.boolean().optional(),
  })
  .superRefine(checkHardware) satisfies z.ZodType<GuestSpec>;

/** Tags: short words a person can filter by. */
const tag = z.string().trim().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/, "A tag is 1 to 32 letters, digits, '.', '_' or '-'.");
const tags = z.array(tag).max(16, "A guest has at most 16 tags.");

/**
 * A guest's hardware as the edit form sends it (JSON). Disks are the guest's existing
 * disks by id, with their bus, cache and read-only setting; new disks are not made here.
 */
export const editHardwareInput = z
  .strictObject({
    ...hardwareShape,
    description,
    tags,
    disks: listOf(z.strictObject({ id: z.string().min(1).max(64), ...diskAttachment }), LIMITS_DEVICES.disks, "disks"),
    cdroms,
    // A new card has no MAC yet: one is generated.
    nics: listOf(z.strictObject({ mac: mac.optional(), model: z.enum(NIC_MODELS), network: nicNetwork, vlan: nicVlan, bandwidth: nicBandwidth, isolated, forwards }), LIMITS_DEVICES.nics, "network cards"),
    /** The guest OS's keyboard layout, for paste as keystrokes; left out: unchanged. */
    keyboardLayout: z.enum(KEYBOARD_LAYOUTS).optional(),
  })
  .superRefine(checkHardware);
export type EditHardwareInput = z.infer<typeof editHardwareInput>;

/**
 * A guest's portable definition: what "Export" writes and "Import" reads. It names
 * no host, path, volume or MAC; importing makes new, empty disks of these sizes.
 */
export const guestDefinitionSchema = z
  .strictObject({
    guesthouse: z.literal(1, "This is not a Guesthouse guest definition (version 1): it lacks \"guesthouse\": 1."),
    name: guestName,
    ...hardwareShape,
    description,
    tags,
    disks: listOf(z.strictObject({ sizeGiB: diskGiB, format: diskFormat, ...diskAttachment }), LIMITS_DEVICES.disks, "disks"),
    cdroms,
    nics: listOf(z.strictObject({ model: z.enum(NIC_MODELS), network: nicNetwork, vlan: nicVlan, bandwidth: nicBandwidth, isolated, forwards }), LIMITS_DEVICES.nics, "network cards"),
  })
  .superRefine(checkHardware);
export type GuestDefinition = z.infer<typeof guestDefinitionSchema>;

/** Reads a definition from text a person pasted or uploaded; every problem is named. */
export function parseDefinition(text: string): GuestDefinition {
  if (text.length > 256 * 1024) throw new GuesthouseError("invalid-input", "The definition is larger than 256 KiB.");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new GuesthouseError("invalid-input", `The definition is not valid JSON: ${(err as Error).message}`);
  }
  return parseOrThrow(guestDefinitionSchema, json, "The definition");
}

/** The create-guest form, as the server action receives it. */
export const createGuestInput = z.strictObject({
  name: guestName,
  vcpus: intIn("vCPUs", LIMITS.vcpus.min, LIMITS.vcpus.max, "", true),
  memoryMiB: intIn("Memory", LIMITS.memoryMiB.min, LIMITS.memoryMiB.max, " MiB", true),
  /** 0 means "no disk". */
  diskGiB: intIn("Disk size", 0, LIMITS.diskGiB.max, " GiB (0 for no disk)", true),
  diskBus: z.enum(DISK_BUSES),
  /** Empty means "no CD-ROM". */
  iso: z.union([z.literal(""), isoName]),
  /** "none", "user", or a managed network of the team by name. */
  network: z.union([z.literal("none"), networkName]),
  /** Which kind boots first; the other follows. */
  boot: z.enum(["cdrom", "disk"]),
});
export type CreateGuestInput = z.infer<typeof createGuestInput>;

const ipv4 = z.string().max(15);
const newNetworkName = networkName.refine((n) => n !== USER_NETWORK, `"${USER_NETWORK}" is the user-mode network every team has; choose another name.`);
/**
 * A managed network as its form and the API send it. The subnet and the DHCP range are
 * checked for what they mean (server/domain/network-plan.ts) when it is made; a bridged
 * network's bridge by the host's agent, its VLANs by parseVlanList.
 */
const routedNetworkInput = z.strictObject({
  name: newNetworkName,
  kind: z.enum(["nat", "isolated"]),
  subnet: z.string().trim().min(1, "Give the network a subnet, such as 10.77.0.0/24.").max(18),
  /** "auto": the upper half of the subnet; "none": no DHCP (isolated networks only); or a range. */
  dhcp: z.union([z.literal("auto"), z.literal("none"), z.strictObject({ start: ipv4, end: ipv4 })]),
  domain: z
    .string()
    .trim()
    .toLowerCase()
    .max(253)
    .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/, "A DNS domain is dot-separated labels of letters, digits and '-', such as lab.internal."),
  /** IPv6 beside IPv4: a unique local /64 (planIpv6), router advertisements, SLAAC. */
  ipv6: z.boolean().default(false),
  description: z.string().max(2000, "The description is at most 2,000 characters.").default(""),
});
/** A bridged network (admins only): guests' taps join a bridge the host already has. */
const bridgedNetworkInput = z.strictObject({
  name: newNetworkName,
  kind: z.literal("bridged"),
  /** The host's bridge, such as br0 (parseHostBridge; the agent refuses one that is not there). */
  bridge: z.string().trim().min(1, "Name the host's bridge, such as br0.").max(15, "An interface name is at most 15 characters."),
  /** The VLANs its cards may be on ("10, 20, 100-199"; "": none, untagged only). */
  vlans: z.string().trim().max(500).default(""),
  description: z.string().max(2000, "The description is at most 2,000 characters.").default(""),
});
export const networkInput = z.discriminatedUnion("kind", [routedNetworkInput, bridgedNetworkInput], { error: 'A network\'s kind is "nat", "isolated" or "bridged".' });
export type NetworkInput = z.infer<typeof networkInput>;

const SIZE_UNITS: Record<string, number> = { "": 1, B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
/** The largest image the dashboard makes or grows to: 64 TiB. */
export const MAX_IMAGE_BYTES = 64 * 2 ** 40;

/**
 * A size as people write it: "20G", "512 MiB", "1.5T", "10gb", or plain bytes. Units are
 * binary (as `qemu-img` reads them); the result is whole bytes, a multiple of 512 (a
 * sector), from 1 MiB to 64 TiB.
 */
export function parseSize(text: string): number {
  const match = /^\s*(\d{1,15}(?:\.\d{1,6})?)\s*([KMGT]?)(?:I?B)?\s*$/i.exec(text);
  if (!match) {
    throw new GuesthouseError("invalid-input", `"${text.slice(0, 40)}" is not a size. Write a number with a unit, like 20G, 512M or 1.5T.`);
  }
  const bytes = Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!;
  if (!Number.isFinite(bytes) || bytes < 2 ** 20) throw new GuesthouseError("invalid-input", "A disk must be at least 1 MiB.");
  if (bytes > MAX_IMAGE_BYTES) throw new GuesthouseError("invalid-input", "A disk can be at most 64 TiB.");
  return Math.ceil(bytes / 512) * 512;
}

/** A size in bytes as the agent's API takes it: whole sectors, 1 MiB to 64 TiB. */
export const imageBytes = z
  .number({ error: "A size must be a number of bytes." })
  .int("A size must be a whole number of bytes.")
  .min(2 ** 20, "A disk must be at least 1 MiB.")
  .max(MAX_IMAGE_BYTES, "A disk can be at most 64 TiB.")
  .refine((n) => n % 512 === 0, "A size must be a multiple of 512 bytes.");

/** A snapshot's name: what `qemu-img snapshot` and QMP take as a tag. */
export const snapshotName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "A snapshot name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit.");

/** A passphrase for an encrypted image: kept by the agent, never shown again. */
export const passphrase = z.string().min(8, "A passphrase has at least 8 characters.").max(1024, "A passphrase has at most 1024 characters.");

/** Parses or throws a GuesthouseError("invalid-input") whose message names every problem. */
export function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown, what = "The request"): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const field = issue.path.length ? `${issue.path.join(".")}: ` : "";
    return `${field}${issue.message}`;
  });
  throw new GuesthouseError("invalid-input", `${what} is not valid. ${problems.join(" ")}`);
}

/** A metrics sample's fields, each a number or null (server/domain/metrics.ts): the agent's replies and the API's answers. */
export const metricFields = <F extends string>(fields: readonly F[]) =>
  z.object(Object.fromEntries(fields.map((f) => [f, z.number().nullable()])) as Record<F, z.ZodNullable<z.ZodNumber>>);

// Numbers, or digits as the Teams page's form sends them; nothing else is coerced (intIn).
const thresholdPercent = intIn("A threshold", 1, 100, " %", true);
const thresholdMinutes = intIn("A threshold's minutes", 1, THRESHOLD_MAX_MINUTES, ` (${THRESHOLD_MAX_MINUTES / 60} hours: the 10 s history is kept a day)`, true);
/** A team's thresholds as its owner sends them (the Teams page, the API): each kind's percent, and minutes for the guests' two. */
export const thresholdsInput = z.strictObject({
  "guest-cpu": z.strictObject({ percent: thresholdPercent, minutes: thresholdMinutes }),
  "guest-memory": z.strictObject({ percent: thresholdPercent, minutes: thresholdMinutes }),
  "folder-space": z.strictObject({ percent: thresholdPercent }),
});
