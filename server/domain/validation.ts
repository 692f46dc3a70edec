/**
 * Input schemas, used once at each boundary: server actions parse form data with
 * them, the agent parses request bodies with them.
 */
import { z } from "zod";
import { GuesthouseError } from "./errors";
import { BOOT_DEVICES, DISK_BUSES, DISK_FORMATS, NIC_MODELS, type GuestSpec } from "./types";

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

export const guestName = z.string().trim().regex(GUEST_NAME, `A guest name must be ${GUEST_NAME_RULE}.`);
export const isoName = z.string().regex(ISO_NAME, "An ISO name is a plain file name ending in .iso.");
export const volumeId = z.string().regex(VOLUME_ID, "A volume id is 8 to 64 lowercase letters and digits.");
export const mac = z.string().regex(MAC, "A MAC address looks like 52:54:00:12:34:56 (lowercase).");

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

export const guestSpecSchema = z.strictObject({
  id: volumeId,
  name: guestName,
  vcpus,
  memoryMiB,
  disks: z
    .array(z.strictObject({ volume: volumeId, format: z.enum(DISK_FORMATS), bus: z.enum(DISK_BUSES) }))
    .max(8),
  cdroms: z.array(z.strictObject({ iso: isoName })).max(4),
  nics: z.array(z.strictObject({ mac, model: z.enum(NIC_MODELS), mode: z.literal("user") })).max(8),
  boot: z.enum(BOOT_DEVICES),
}) satisfies z.ZodType<GuestSpec>;

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
  network: z.enum(["user", "none"]),
  boot: z.enum(BOOT_DEVICES),
});
export type CreateGuestInput = z.infer<typeof createGuestInput>;

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
