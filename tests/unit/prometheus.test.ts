/**
 * `/metrics`'s text (server/web/metrics/exposition.ts, prometheus.ts): the format's own
 * rules (HELP and TYPE once per family, escaping, values), names any person chose written
 * so a parser reads them back unchanged, counters and gauges, nothing for what is not
 * known, host series only for those who see the host — and Debian's `promtool check
 * metrics` on the whole output.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { GUEST_FIELDS, HOST_FIELDS, type GuestCurrent, type GuestSample, type HostCurrent, type HostSample } from "../../server/domain/metrics";
import { escapeLabelValue, exposition, formatValue, type MetricFamily } from "../../server/web/metrics/exposition";
import { renderScrape, scrapeFamilies, type Scrape, type ScrapeGuest } from "../../server/web/metrics/prometheus";
import { parseExposition as parse, promtool } from "../helpers/prometheus-text";

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** Names people could give a team or a host: quotes, backslashes, newlines, braces, commas, other scripts. */
const HOSTILE = ['Ops "red" team', "back\\slash\\", "two\nlines", 'x",guest="forged', "} 1\nfake_metric 2", "Ünïcødé ✓ 团队", "trailing\\", "\\n literally", ""];

function guestSample(over: Partial<GuestSample> = {}): GuestSample {
  return { ...(Object.fromEntries(GUEST_FIELDS.map((f) => [f, null])) as GuestSample), ...over };
}
function hostSample(over: Partial<HostSample> = {}): HostSample {
  return { ...(Object.fromEntries(HOST_FIELDS.map((f) => [f, null])) as HostSample), ...over };
}

function running(id: string, over: Partial<GuestCurrent> = {}): GuestCurrent {
  return {
    id,
    at: 1_700_000_000_000,
    vcpus: 2,
    memory: 512 * MiB,
    vcpuSeconds: [12.5, 3.25],
    processSeconds: 20.75,
    rss: 300 * MiB,
    guestMemory: null,
    disks: [],
    nics: [],
    pressure: null,
    sample: guestSample({ cpu: 10 }),
    ...over,
  };
}

function host(over: Partial<HostCurrent> = {}): HostCurrent {
  return {
    at: 1_700_000_000_000,
    cores: 8,
    cpuBusySeconds: 123_456.78,
    memTotal: 32 * GiB,
    memAvailable: 20 * GiB,
    load: [0.5, 0.75, 1.25],
    folders: [
      { pool: "default", totalBytes: 500 * GiB, freeBytes: 200 * GiB },
      { pool: "fast", totalBytes: 100 * GiB, freeBytes: 90 * GiB },
    ],
    pressureUnavailable: null,
    sample: hostSample({ guests: 3, vcpus: 5, memAllocated: 1536 * MiB }),
    ...over,
  };
}

function guest(name: string, current: GuestCurrent | null, over: Partial<ScrapeGuest> = {}): ScrapeGuest {
  return { id: `id-${name}`, name, team: "alpha", host: "local", vcpus: 1, memory: 256 * MiB, current, disks: new Map(), ...over };
}

/** A host with one guest of everything, one stopped, and a second host whose agent did not answer. */
function fullScrape(hostSeries: boolean): Scrape {
  const busy = running("id-web", {
    guestMemory: { total: 480 * MiB, free: 100 * MiB, available: 300 * MiB },
    disks: [
      { volume: "vol-web-1", readBytes: 1e6, writeBytes: 64 * MiB, readOps: 100, writeOps: 200, readSeconds: 0.5, writeSeconds: 1.25, allocatedBytes: 70 * MiB },
      { volume: "vol-forgotten", readBytes: 0, writeBytes: 0, readOps: 0, writeOps: 0, readSeconds: 0, writeSeconds: 0, allocatedBytes: null },
    ],
    nics: [
      { mac: "52:54:00:12:34:56", counters: { rxBytes: 1000, txBytes: 2000, rxPackets: 10, txPackets: 20, rxDropped: 1, txDropped: 0 } },
      { mac: "52:54:00:12:34:57", counters: null, why: "User-mode networking runs inside QEMU: the host has no counters for it." },
    ],
    pressure: { cpu: 1.5, memory: 0, io: 0.25 },
  });
  return {
    guests: [
      guest("web", busy, { team: HOSTILE[0]!, disks: new Map([["vol-web-1", { file: "web-disk.qcow2", pool: "fast" }]]) }),
      guest("bare", running("id-bare")),
      guest("idle", null, { team: HOSTILE[2]!, vcpus: 4, memory: 1 * GiB }),
    ],
    hosts: [
      { name: "local", current: host(), running: [busy, running("id-bare"), running("id-elsewhere")] },
      { name: "gone", current: null, running: [] },
    ],
    hostSeries,
  };
}

describe("the exposition format", () => {
  test("HELP and TYPE once per family, before its samples; a family without samples is left out", () => {
    const text = exposition([
      { name: "a_total", type: "counter", help: "As.", samples: [{ labels: { x: "1" }, value: 1 }, { labels: { x: "2" }, value: 2 }] },
      { name: "b_bytes", type: "gauge", help: "Nothing known.", samples: [] },
      { name: "c", type: "gauge", help: "One.", samples: [{ labels: {}, value: 3 }] },
    ]);
    assert.equal(text, '# HELP a_total As.\n# TYPE a_total counter\na_total{x="1"} 1\na_total{x="2"} 2\n# HELP c One.\n# TYPE c gauge\nc 3\n');
    assert.equal(exposition([]), "");
  });

  test("label values escape backslash, double quote and newline, and nothing else; HELP escapes backslash and newline", () => {
    assert.equal(escapeLabelValue('a\\b"c\nd'), 'a\\\\b\\"c\\nd');
    assert.equal(escapeLabelValue("tab\tand ✓ and {},="), "tab\tand ✓ and {},=");
    const text = exposition([{ name: "g", type: "gauge", help: 'say "hi"\\ \nbye', samples: [{ labels: { l: '"' }, value: 1 }] }]);
    assert.equal(text.split("\n")[0], '# HELP g say "hi"\\\\ \\nbye');
    assert.equal(text.split("\n")[2], 'g{l="\\""} 1');
  });

  test("values: integers and fractions as JavaScript writes them, NaN, +Inf, -Inf", () => {
    assert.deepEqual([0, 1, 1.5, 12345678901234, 1e21, -2, NaN, Infinity, -Infinity].map(formatValue), ["0", "1", "1.5", "12345678901234", "1e+21", "-2", "NaN", "+Inf", "-Inf"]);
  });

  test("refuses what would be a bug: bad names, a counter without _total, a family twice, a series twice", () => {
    const one = (f: Partial<MetricFamily>): MetricFamily => ({ name: "ok_total", type: "counter", help: "h", samples: [{ labels: {}, value: 1 }], ...f });
    assert.throws(() => exposition([one({ name: "bad-name_total" })]), /invalid metric name/);
    assert.throws(() => exposition([one({ samples: [{ labels: { "bad-label": "x" }, value: 1 }] })]), /invalid label name/);
    assert.throws(() => exposition([one({ samples: [{ labels: { __name__: "x" }, value: 1 }] })]), /invalid label name/);
    assert.throws(() => exposition([one({ name: "ok_seconds" })]), /ends with _total/);
    assert.throws(() => exposition([one({}), one({})]), /given twice/);
    assert.throws(() => exposition([one({ samples: [{ labels: { a: "1", b: "2" }, value: 1 }, { labels: { b: "2", a: "1" }, value: 2 }] })]), /two samples/);
    // Values that would only look alike once written are different series.
    assert.doesNotThrow(() => exposition([one({ samples: [{ labels: { a: 'x",b="y' }, value: 1 }, { labels: { a: "x", b: "y" }, value: 2 }] })]));
  });

  test("any label value a person could type is read back unchanged", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: "binary" }), { minLength: 1, maxLength: 5 }), (values) => {
        const unique = [...new Set(values)];
        const text = exposition([{ name: "g", type: "gauge", help: "h", samples: unique.map((v, i) => ({ labels: { team: v, guest: `g${i}` }, value: i })) }]);
        assert.deepEqual(
          parse(text).samples.map((s) => s.labels.team),
          unique,
        );
      }),
      { numRuns: 300 },
    );
  });
});

describe("the scrape", () => {
  test("a running guest: every counter and level it has, labelled by team, guest and host, disk and pool, vCPU, NIC", () => {
    const { samples } = parse(renderScrape(fullScrape(true)));
    const of = (name: string, guestName = "web") => samples.filter((s) => s.name === name && s.labels.guest === guestName);
    const base = { team: HOSTILE[0]!, guest: "web", host: "local" };
    assert.deepEqual(of("guesthouse_guest_up"), [{ name: "guesthouse_guest_up", labels: base, value: "1" }]);
    assert.deepEqual(of("guesthouse_guest_info")[0]?.labels, { ...base, id: "id-web" });
    assert.deepEqual(
      of("guesthouse_guest_cpu_seconds_total").map((s) => [s.labels.vcpu, s.value]),
      [
        ["0", "12.5"],
        ["1", "3.25"],
      ],
    );
    assert.equal(of("guesthouse_guest_process_cpu_seconds_total")[0]?.value, "20.75");
    assert.equal(of("guesthouse_guest_vcpus")[0]?.value, "2", "what it runs with");
    assert.equal(of("guesthouse_guest_memory_configured_bytes")[0]?.value, String(512 * MiB));
    assert.equal(of("guesthouse_guest_memory_resident_bytes")[0]?.value, String(300 * MiB));
    assert.equal(of("guesthouse_guest_memory_guest_available_bytes")[0]?.value, String(300 * MiB));
    // The disk by the file name people see, with its folder; one the database no longer knows by its volume id.
    assert.deepEqual(
      of("guesthouse_guest_disk_written_bytes_total").map((s) => [s.labels.disk, s.labels.pool, s.value]),
      [
        ["web-disk.qcow2", "fast", String(64 * MiB)],
        ["vol-forgotten", undefined, "0"],
      ],
    );
    assert.deepEqual(
      of("guesthouse_guest_disk_allocated_bytes").map((s) => s.labels.disk),
      ["web-disk.qcow2"],
      "no allocation for a disk whose image could not be read",
    );
    // The NIC by its MAC; the user-mode one has no counters, so no series.
    assert.deepEqual(
      of("guesthouse_guest_network_receive_bytes_total").map((s) => [s.labels.nic, s.value]),
      [["52:54:00:12:34:56", "1000"]],
    );
    assert.equal(of("guesthouse_guest_network_transmit_bytes_total")[0]?.value, "2000");
    assert.equal(of("guesthouse_guest_network_receive_drops_total")[0]?.value, "1");
    assert.equal(of("guesthouse_guest_pressure_io_waiting_seconds_total")[0]?.value, "0.25");
  });

  test("nothing for what is not known: no balloon, no pressure, no NIC counters, a stopped guest's counters", () => {
    const { samples } = parse(renderScrape(fullScrape(true)));
    const names = (guestName: string) => new Set(samples.filter((s) => s.labels.guest === guestName).map((s) => s.name));
    const bare = names("bare");
    for (const absent of ["guesthouse_guest_memory_guest_total_bytes", "guesthouse_guest_pressure_cpu_waiting_seconds_total", "guesthouse_guest_network_receive_bytes_total", "guesthouse_guest_disk_read_bytes_total"]) {
      assert.ok(!bare.has(absent), `${absent} for a guest without it`);
    }
    assert.ok(bare.has("guesthouse_guest_cpu_seconds_total"));
    // A stopped guest: up 0, its id, what its next start gives it; nothing else.
    assert.deepEqual(
      samples.filter((s) => s.labels.guest === "idle").map((s) => [s.name, s.value]),
      [
        ["guesthouse_guest_info", "1"],
        ["guesthouse_guest_up", "0"],
        ["guesthouse_guest_vcpus", "4"],
        ["guesthouse_guest_memory_configured_bytes", String(GiB)],
      ],
    );
    assert.equal(samples.find((s) => s.labels.guest === "idle")?.labels.team, HOSTILE[2], "a newline in a team's name survives");
  });

  test("hosts: each agent's answer as guesthouse_agent_up; the host's own series only for those who manage it", () => {
    const admin = parse(renderScrape(fullScrape(true))).samples;
    const member = parse(renderScrape(fullScrape(false))).samples;
    for (const samples of [admin, member]) {
      assert.deepEqual(
        samples.filter((s) => s.name === "guesthouse_agent_up").map((s) => [s.labels.host, s.value]),
        [
          ["local", "1"],
          ["gone", "0"],
        ],
      );
    }
    assert.deepEqual(member.filter((s) => s.name.startsWith("guesthouse_host_")), [], "a member sees no host series");
    const h = (name: string, labels: Record<string, string> = { host: "local" }) => admin.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
    assert.equal(h("guesthouse_host_cores"), "8");
    assert.equal(h("guesthouse_host_cpu_busy_seconds_total"), "123456.78");
    assert.equal(h("guesthouse_host_memory_available_bytes"), String(20 * GiB));
    assert.deepEqual([h("guesthouse_host_load1"), h("guesthouse_host_load5"), h("guesthouse_host_load15")], ["0.5", "0.75", "1.25"]);
    assert.equal(h("guesthouse_host_storage_free_bytes", { host: "local", pool: "fast" }), String(90 * GiB));
    assert.equal(h("guesthouse_host_guests_running"), "3", "every team's guests, as the agent counted them");
    assert.equal(h("guesthouse_host_vcpus_allocated"), "5");
    assert.equal(h("guesthouse_host_memory_allocated_bytes"), String(1536 * MiB));
    assert.equal(admin.filter((s) => s.labels.host === "gone" && s.name.startsWith("guesthouse_host_")).length, 0, "nothing of a host that did not answer");
    // Without the agent's tick yet, the counts come from the guests it reported.
    const early = fullScrape(true);
    early.hosts[0]!.current = host({ sample: hostSample() });
    const fallback = parse(renderScrape(early)).samples;
    assert.equal(fallback.find((s) => s.name === "guesthouse_host_guests_running")?.value, "3");
    assert.equal(fallback.find((s) => s.name === "guesthouse_host_vcpus_allocated")?.value, "6");
  });

  test("counters end in _total and are counters; every other family is a gauge; each has its HELP", () => {
    const families = scrapeFamilies(fullScrape(true));
    const { types, helps } = parse(renderScrape(fullScrape(true)));
    for (const f of families) {
      assert.equal(f.type, f.name.endsWith("_total") ? "counter" : "gauge", f.name);
      assert.ok(f.name.startsWith("guesthouse_guest_") || f.name.startsWith("guesthouse_host_") || f.name === "guesthouse_agent_up", f.name);
      assert.ok(f.help.length > 10, `${f.name} is explained`);
      if (f.samples.length) {
        assert.equal(types.get(f.name), f.type);
        assert.ok(helps.get(f.name));
      }
    }
    assert.equal(families.filter((f) => f.samples.length === 0).length, 0, "the full scrape has a sample of every family");
  });

  test("Debian's promtool finds nothing wrong with the scrape, an admin's or a member's, hostile names included", () => {
    const hostile = fullScrape(true);
    hostile.guests.push(...HOSTILE.map((team, i) => guest(`g${i}`, running(`id-g${i}`), { team, host: HOSTILE[(i + 1) % HOSTILE.length]! })));
    for (const scrape of [fullScrape(true), fullScrape(false), hostile]) {
      const text = renderScrape(scrape);
      const { status, output } = promtool(text);
      assert.equal(status, 0, `promtool check metrics:\n${output}\n--- the text:\n${text}`);
      assert.equal(output.trim(), "", "no lint warnings");
    }
    // Read back, each hostile name is the name again: no forged label, no line of its own.
    const ups = parse(renderScrape(hostile)).samples.filter((s) => s.name === "guesthouse_guest_up" && /^g\d$/.test(s.labels.guest!));
    assert.deepEqual(
      ups.map((s) => [s.labels.team, s.labels.host]),
      HOSTILE.map((team, i) => [team, HOSTILE[(i + 1) % HOSTILE.length]]),
    );
    assert.ok(!renderScrape(hostile).split("\n").some((l) => l.startsWith("fake_metric")));
    // And it does object to a broken text, so its silence means something.
    assert.notEqual(promtool('# TYPE x counter\nx{a="b} 1\n').status, 0);
  });

  test("an empty scrape (a member without guests, no host in view) is an empty text that promtool takes", () => {
    const text = renderScrape({ guests: [], hosts: [], hostSeries: false });
    assert.equal(text, "");
    assert.equal(promtool(text).status, 0);
  });
});
