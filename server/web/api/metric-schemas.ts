/**
 * The REST API's bodies for metrics (server/web/metrics/views.ts), registered with the
 * API's other components (schemas.ts): a guest's or host's history in columns, a guest's
 * live samples, what runs now, "top consumers", and the guest list's small figures. Each
 * answer's schema is checked at compile time against the type the views return.
 */
import { z } from "zod";
import {
  GUEST_FIELDS,
  HOST_FIELDS,
  METRIC_RANGE_NAMES,
  THRESHOLD_KINDS,
  type GuestCurrent,
  type GuestField,
  type GuestSample,
  type HostCurrent,
  type HostField,
  type MetricRange,
  type MetricSeries,
} from "../../domain/metrics";
import type { MetricAlert } from "../metrics/thresholds";
import type { ConsumerRow, TopWindow } from "../metrics/views";
import { metricFields, thresholdsInput } from "../../domain/validation";
import { apiSchemas } from "./schemas";

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const FIELD_NOTE = "A field is null where its source has nothing to say (no balloon driver, a user-mode NIC, no cgroup of its own), never 0.";


// ——— Queries ———

export const rangeQuery = z.strictObject({
  range: z
    .enum(METRIC_RANGE_NAMES as [MetricRange, ...MetricRange[]], { error: `range must be one of ${METRIC_RANGE_NAMES.join(", ")}.` })
    .optional()
    .describe("how far back: hour (10 s points), day and week (1 min), month and year (1 h); hour unless given"),
});
export const liveQuery = z.strictObject({
  after: z
    .string()
    .regex(/^\d{1,15}$/, "after is a time in ms since the epoch (a whole number).")
    .transform(Number)
    .optional()
    .describe("the samples read after this time, ms since the epoch (the last one you have)"),
});
const TOP_WINDOW_NAMES = ["now", "hour", "day"] as const satisfies readonly TopWindow[];
export const topQuery = z.strictObject({
  sort: z
    .enum(GUEST_FIELDS, { error: `sort must be one of ${GUEST_FIELDS.join(", ")}.` })
    .optional()
    .describe("the field ranked by, highest first (cpu unless given)"),
  window: z
    .enum(TOP_WINDOW_NAMES, { error: `window must be one of ${TOP_WINDOW_NAMES.join(", ")}.` })
    .optional()
    .describe("now: the latest sample; hour, day: the average over it (now unless given)"),
});
export const figuresQuery = z.strictObject({
  ids: z
    .string()
    .regex(/^[\w-]{1,64}(,[\w-]{1,64}){0,499}$/, "ids is a comma-separated list of up to 500 guest ids.")
    .transform((s) => s.split(","))
    .optional()
    .describe("only these guests (the ones a page shows), comma-separated; every guest the caller may see unless given"),
});

// ——— Answers ———

const column = z.array(z.number().nullable());
const fieldColumns = z.object({ min: column, avg: column, max: column });
const seriesOf = <F extends string>(fields: readonly F[]) =>
  z.object({
    resolution: z.number().int().describe("seconds per point"),
    from: z.number().describe("the range's start, seconds since the epoch"),
    to: z.number().describe("its end"),
    t: z.array(z.number()).describe("each point's bucket start, seconds since the epoch; buckets without any sample are left out"),
    fields: z.object(Object.fromEntries(fields.map((f) => [f, fieldColumns])) as Record<F, typeof fieldColumns>),
  });

export const guestSeries = seriesOf(GUEST_FIELDS).register(apiSchemas, {
  id: "GuestMetricSeries",
  description: `A guest's history in columns: t[i] is a bucket's start, fields[f].min/avg/max[i] its samples' min, average and max. cpu: % of its vCPUs; hostCpu: % of the host's cores; rss, memTotal, memAvailable: bytes; disk*: bytes/s, ops/s, diskWait ms/s; net*: bytes/s, packets/s; psi*: % of the time stalled. ${FIELD_NOTE}`,
});
export const hostSeries = seriesOf(HOST_FIELDS).register(apiSchemas, {
  id: "HostMetricSeries",
  description: "A host's history in columns (as GuestMetricSeries): cpu %, memUsed and memTotal bytes, load1, running guests, their vcpus and memAllocated (bytes).",
});

const guestSample = metricFields(GUEST_FIELDS).register(apiSchemas, { id: "GuestSample", description: `A guest's rates and levels over one interval (units as in GuestMetricSeries). ${FIELD_NOTE}` });
const hostSample = metricFields(HOST_FIELDS).register(apiSchemas, { id: "HostSample" });

export const liveSamples = z
  .object({ items: z.array(z.object({ at: z.number().describe("ms since the epoch"), sample: guestSample })) })
  .register(apiSchemas, { id: "LiveSamples", description: "A running guest's samples since `after`, oldest first; asked every second or two, the host samples the guest every second." });

const nicCounters = z.object({ rxBytes: z.number(), txBytes: z.number(), rxPackets: z.number(), txPackets: z.number(), rxDropped: z.number(), txDropped: z.number() });
export const guestCurrent = z
  .object({
    id: z.string(),
    at: z.number().describe("when the counters were read, ms since the epoch"),
    vcpus: z.number().int(),
    memory: z.number().describe("configured memory, bytes"),
    vcpuSeconds: z.array(z.number()).describe("CPU seconds of each vCPU thread, in vCPU order"),
    processSeconds: z.number().describe("CPU seconds of the whole QEMU process"),
    rss: z.number(),
    guestMemory: z.object({ total: z.number(), free: z.number(), available: z.number() }).nullable().describe("the guest's view through its balloon driver; null without one"),
    disks: z.array(
      z.object({
        volume: z.string(),
        readBytes: z.number(),
        writeBytes: z.number(),
        readOps: z.number(),
        writeOps: z.number(),
        readSeconds: z.number(),
        writeSeconds: z.number(),
        allocatedBytes: z.number().nullable().describe("the image's allocated size on the host"),
      }),
    ),
    nics: z.array(z.object({ mac: z.string(), counters: nicCounters.nullable().describe("as the guest sees them; null where the card's kind has none"), why: z.string().optional() })),
    pressure: z.object({ cpu: z.number(), memory: z.number(), io: z.number() }).nullable().describe("total stall seconds of the guest's cgroup; null without one of its own"),
    sample: guestSample,
  })
  .register(apiSchemas, { id: "GuestCurrent", description: "A running guest's cumulative counters now (per vCPU, disk and NIC) and its latest sample." });

export const metricAlert = z
  .object({
    kind: z.enum(THRESHOLD_KINDS),
    subject: z.string().describe("the guest's id, or the storage folder's name"),
    message: z.string(),
    label: z.string(),
  })
  .register(apiSchemas, { id: "MetricAlert", description: "A threshold crossed now (a team's thresholds)." });

export const hostCurrent = z
  .object({
    at: z.number(),
    cores: z.number().int(),
    cpuBusySeconds: z.number(),
    memTotal: z.number(),
    memAvailable: z.number(),
    load: z.tuple([z.number(), z.number(), z.number()]),
    folders: z.array(z.object({ pool: z.string(), totalBytes: z.number(), freeBytes: z.number() })),
    pressureUnavailable: z.string().nullable().describe("why guests' pressure cannot be read here; null when each guest has a cgroup of its own"),
    sample: hostSample,
    alerts: z.array(metricAlert),
  })
  .register(apiSchemas, { id: "HostCurrent", description: "The host now: CPU, memory, load, each storage folder's space, the latest sample (running guests, their vCPUs and memory: overcommit), and the thresholds crossed." });

const figures = metricFields(GUEST_FIELDS);
export const consumerList = z
  .object({
    sort: z.enum(GUEST_FIELDS),
    window: z.enum(TOP_WINDOW_NAMES),
    items: z.array(
      z.object({
        id: z.string(),
        name: z.string(),
        team: z.object({ id: z.string(), name: z.string() }),
        host: z.object({ id: z.string(), name: z.string() }),
        vcpus: z.number().int(),
        memory: z.number().describe("configured, bytes"),
        running: z.boolean(),
        figures: figures.describe("what the list is ranked by: the latest value (now) or the average over the window; null where unknown"),
        peaks: figures.describe("each field's peak over the window"),
      }),
    ),
  })
  .register(apiSchemas, { id: "TopConsumers", description: "Every guest the caller may see, highest first by `sort` (unknowns last)." });

export const guestFigures = z
  .object({
    items: z.array(
      z.object({
        id: z.string(),
        at: z.number().describe("when it was read, ms since the epoch"),
        cpu: z.number().nullable().describe("% of its vCPUs"),
        rss: z.number().describe("QEMU's resident memory, bytes"),
        memory: z.number().describe("configured, bytes"),
        guestUsed: z.number().nullable().describe("in use as the guest sees it (total less available), bytes; null without a balloon driver"),
        alerts: z.array(metricAlert),
      }),
    ),
    unreachable: z.array(z.string()).describe("hosts whose agent did not answer (their guests have no figures)"),
  })
  .register(apiSchemas, { id: "GuestFigures", description: "The running guests' small figures for a list: CPU and memory now, and thresholds crossed." });

// ——— Thresholds ———

const threshold = (minutes: boolean) =>
  z.object({ percent: z.number().int().min(1).max(100).describe("%"), ...(minutes ? { minutes: z.number().int().min(1).describe("for this many minutes") } : {}) });
export const teamThresholds = z
  .object({ "guest-cpu": threshold(true), "guest-memory": threshold(true), "folder-space": threshold(false) })
  .register(apiSchemas, {
    id: "TeamThresholds",
    description: "When a team's guests and storage folders count as in trouble (badges on the guest list and the host page): a guest's CPU (% of its vCPUs) or memory in use above `percent` for `minutes`, a storage folder its disks are in fuller than `percent`.",
  });
export const thresholdsRequest = thresholdsInput.register(apiSchemas, { id: "ThresholdsRequest", description: "A team's thresholds, every kind at once (as GET answers them)." });

// The answers and the views' types are one shape: a field added to one and not the other does not compile.
const checks: [
  Same<z.infer<typeof guestSeries>, MetricSeries<GuestField>>,
  Same<z.infer<typeof hostSeries>, MetricSeries<HostField>>,
  Same<z.infer<typeof guestCurrent>, GuestCurrent>,
  Same<Omit<z.infer<typeof hostCurrent>, "alerts">, HostCurrent>,
  Same<z.infer<typeof metricAlert>, MetricAlert>,
  Same<z.infer<typeof consumerList>["items"][number], ConsumerRow>,
  Same<z.infer<typeof guestSample>, GuestSample>,
  Same<(typeof TOP_WINDOW_NAMES)[number], TopWindow>,
] = [true, true, true, true, true, true, true, true];
void checks;
