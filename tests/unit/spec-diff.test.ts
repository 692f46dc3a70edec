/**
 * Pending changes (server/domain/spec-diff.ts): what differs between the spec a guest
 * runs with and the one stored for its next start, in words. Every expected entry is
 * written out by hand.
 */
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { diffSpecs, type SpecChange } from "../../server/domain/spec-diff";
import type { DiskSpec, GuestSpec, NicSpec } from "../../server/domain/types";

const DISK1: DiskSpec = { volume: "vol00001", pool: "default", file: "vol00001.qcow2", format: "qcow2", backing: [], encrypted: false, bus: "virtio", cache: "none", readOnly: false };
const DISK2: DiskSpec = { volume: "vol00002", pool: "default", file: "vol00002.raw", format: "raw", backing: [], encrypted: false, bus: "ide", cache: "writeback", readOnly: false };
const NIC1: NicSpec = { mac: "52:54:00:12:34:56", model: "virtio", mode: "user", isolated: false, forwards: [{ protocol: "tcp", hostPort: 2222, guestPort: 22 }] };
const NIC2: NicSpec = { mac: "52:54:00:00:00:02", model: "e1000", mode: "user", isolated: false, forwards: [] };

/** What the guest runs with. */
const RUNNING: GuestSpec = {
  id: "abcd1234",
  name: "web1",
  machine: "q35",
  firmware: "bios",
  vcpus: 2,
  sockets: 1,
  threads: 1,
  memoryMiB: 256,
  disks: [DISK1, DISK2],
  cdroms: [{ iso: "a.iso" }],
  nics: [NIC1],
  bootOrder: ["cdrom", "disk"],
  display: "std",
  serial: true,
  rtc: "utc",
};

const next = (patch: Partial<GuestSpec>): GuestSpec => ({ ...structuredClone(RUNNING), ...patch });

describe("diffSpecs: no change", () => {
  test("the same spec: no changes", () => {
    assert.deepEqual(diffSpecs(RUNNING, RUNNING), []);
  });

  test("an equal copy: no changes", () => {
    assert.deepEqual(diffSpecs(RUNNING, structuredClone(RUNNING)), []);
  });

  test("a guest with no devices at all: no changes", () => {
    const bare = next({ disks: [], cdroms: [], nics: [], bootOrder: [] });
    assert.deepEqual(diffSpecs(bare, structuredClone(bare)), []);
  });

  test("the one-time boot menu is not a pending change", () => {
    assert.deepEqual(diffSpecs({ ...RUNNING, bootMenu: true }, RUNNING), []);
    assert.deepEqual(diffSpecs(RUNNING, { ...RUNNING, bootMenu: true }), []);
  });

  test("the specs are not modified", () => {
    const a = structuredClone(RUNNING);
    const b = next({ memoryMiB: 512, nics: [], cdroms: [{ iso: "b.iso" }] });
    const bCopy = structuredClone(b);
    diffSpecs(a, b);
    assert.deepEqual(a, RUNNING);
    assert.deepEqual(b, bCopy);
  });
});

describe("diffSpecs: one scalar field changed gives exactly one entry", () => {
  const TABLE: [string, Partial<GuestSpec>, SpecChange][] = [
    ["machine q35 → pc", { machine: "pc" }, { what: "Machine", from: "q35", to: "pc" }],
    ["firmware BIOS → UEFI", { firmware: "uefi" }, { what: "Firmware", from: "BIOS", to: "UEFI" }],
    [
      "vCPUs 2 → 4",
      { vcpus: 4 },
      { what: "vCPUs", from: "2 (1 socket(s), 1 thread(s) per core)", to: "4 (1 socket(s), 1 thread(s) per core)" },
    ],
    [
      "sockets 1 → 2 (same vCPUs)",
      { sockets: 2 },
      { what: "vCPUs", from: "2 (1 socket(s), 1 thread(s) per core)", to: "2 (2 socket(s), 1 thread(s) per core)" },
    ],
    [
      "threads 1 → 2 (same vCPUs)",
      { threads: 2 },
      { what: "vCPUs", from: "2 (1 socket(s), 1 thread(s) per core)", to: "2 (1 socket(s), 2 thread(s) per core)" },
    ],
    [
      "vCPUs, sockets and threads together: still one entry",
      { vcpus: 8, sockets: 2, threads: 2 },
      { what: "vCPUs", from: "2 (1 socket(s), 1 thread(s) per core)", to: "8 (2 socket(s), 2 thread(s) per core)" },
    ],
    ["memory 256 MiB → 512 MiB", { memoryMiB: 512 }, { what: "Memory", from: "256 MiB", to: "512 MiB" }],
    ["memory 256 MiB → 2 GiB", { memoryMiB: 2048 }, { what: "Memory", from: "256 MiB", to: "2 GiB" }],
    ["memory 256 MiB → 1536 MiB", { memoryMiB: 1536 }, { what: "Memory", from: "256 MiB", to: "1536 MiB" }],
    ["boot order swapped", { bootOrder: ["disk", "cdrom"] }, { what: "Boot order", from: "cdrom, disk", to: "disk, cdrom" }],
    ["network added to the boot order", { bootOrder: ["network", "cdrom", "disk"] }, { what: "Boot order", from: "cdrom, disk", to: "network, cdrom, disk" }],
    ["boot order emptied", { bootOrder: [] }, { what: "Boot order", from: "cdrom, disk", to: "none" }],
    ["display std → qxl", { display: "qxl" }, { what: "Display", from: "std", to: "qxl" }],
    ["display std → virtio", { display: "virtio" }, { what: "Display", from: "std", to: "virtio" }],
    ["serial console off", { serial: false }, { what: "Serial console", from: "on", to: "off" }],
    ["clock UTC → local time", { rtc: "localtime" }, { what: "Clock", from: "UTC", to: "local time" }],
  ];
  for (const [name, patch, change] of TABLE) {
    test(name, () => {
      assert.deepEqual(diffSpecs(RUNNING, next(patch)), [change]);
    });
    test(`${name}, read the other way: from and to swap`, () => {
      assert.deepEqual(diffSpecs(next(patch), RUNNING), [{ what: change.what, from: change.to, to: change.from }]);
    });
  }

  test("several fields at once: one entry each, in a fixed order", () => {
    assert.deepEqual(diffSpecs(RUNNING, next({ rtc: "localtime", memoryMiB: 512, machine: "pc", firmware: "uefi", serial: false })), [
      { what: "Machine", from: "q35", to: "pc" },
      { what: "Firmware", from: "BIOS", to: "UEFI" },
      { what: "Memory", from: "256 MiB", to: "512 MiB" },
      { what: "Serial console", from: "on", to: "off" },
      { what: "Clock", from: "UTC", to: "local time" },
    ]);
  });
});

describe("diffSpecs: disks", () => {
  const TABLE: [string, DiskSpec[], SpecChange[]][] = [
    ["bus virtio → scsi", [{ ...DISK1, bus: "scsi" }, DISK2], [{ what: "Disk 1", from: "virtio, cache none", to: "scsi, cache none" }]],
    ["bus ide → virtio (second disk)", [DISK1, { ...DISK2, bus: "virtio" }], [{ what: "Disk 2", from: "ide, cache writeback", to: "virtio, cache writeback" }]],
    ["cache none → writethrough", [{ ...DISK1, cache: "writethrough" }, DISK2], [{ what: "Disk 1", from: "virtio, cache none", to: "virtio, cache writethrough" }]],
    ["read-only on", [{ ...DISK1, readOnly: true }, DISK2], [{ what: "Disk 1", from: "virtio, cache none", to: "virtio, cache none, read-only" }]],
    [
      "bus, cache and read-only at once: one entry",
      [{ ...DISK1, bus: "scsi", cache: "unsafe", readOnly: true }, DISK2],
      [{ what: "Disk 1", from: "virtio, cache none", to: "scsi, cache unsafe, read-only" }],
    ],
    [
      "both disks changed: one entry each",
      [{ ...DISK1, cache: "directsync" }, { ...DISK2, readOnly: true }],
      [
        { what: "Disk 1", from: "virtio, cache none", to: "virtio, cache directsync" },
        { what: "Disk 2", from: "ide, cache writeback", to: "ide, cache writeback, read-only" },
      ],
    ],
    ["a disk removed", [DISK1], [{ what: "Disk 2", from: "ide, cache writeback", to: "removed" }]],
    [
      "a disk added",
      [DISK1, DISK2, { volume: "vol00003", pool: "default", file: "vol00003.qcow2", format: "qcow2", backing: [], encrypted: false, bus: "scsi", cache: "none", readOnly: true }],
      [{ what: "Disk (new)", from: "none", to: "scsi, cache none, read-only" }],
    ],
  ];
  for (const [name, disks, changes] of TABLE) {
    test(name, () => {
      assert.deepEqual(diffSpecs(RUNNING, next({ disks })), changes);
    });
  }

  test("read-only off is a change too", () => {
    const ro = next({ disks: [{ ...DISK1, readOnly: true }, DISK2] });
    assert.deepEqual(diffSpecs(ro, RUNNING), [{ what: "Disk 1", from: "virtio, cache none, read-only", to: "virtio, cache none" }]);
  });
});

describe("diffSpecs: CD-ROMs", () => {
  test("a CD-ROM added", () => {
    assert.deepEqual(diffSpecs(RUNNING, next({ cdroms: [{ iso: "a.iso" }, { iso: "b.iso" }] })), [
      { what: "CD-ROM (new)", from: "none", to: "b.iso" },
    ]);
  });

  test("a CD-ROM added to a guest without one", () => {
    assert.deepEqual(diffSpecs(next({ cdroms: [] }), RUNNING), [{ what: "CD-ROM (new)", from: "none", to: "a.iso" }]);
  });

  test("a CD-ROM removed", () => {
    assert.deepEqual(diffSpecs(RUNNING, next({ cdroms: [] })), [{ what: "CD-ROM 1", from: "a.iso", to: "removed" }]);
  });

  test("a CD-ROM's ISO changed", () => {
    assert.deepEqual(diffSpecs(RUNNING, next({ cdroms: [{ iso: "debian-12.iso" }] })), [
      { what: "CD-ROM 1", from: "a.iso", to: "debian-12.iso" },
    ]);
  });

  test("the second CD-ROM's ISO changed", () => {
    const two = next({ cdroms: [{ iso: "a.iso" }, { iso: "b.iso" }] });
    assert.deepEqual(diffSpecs(two, next({ cdroms: [{ iso: "a.iso" }, { iso: "c.iso" }] })), [
      { what: "CD-ROM 2", from: "b.iso", to: "c.iso" },
    ]);
  });
});

describe("diffSpecs: network cards", () => {
  test("a network card added", () => {
    assert.deepEqual(diffSpecs(RUNNING, next({ nics: [NIC1, NIC2] })), [
      { what: "Network card (new)", from: "none", to: "e1000 52:54:00:00:00:02" },
    ]);
  });

  test("a network card removed", () => {
    assert.deepEqual(diffSpecs(RUNNING, next({ nics: [] })), [
      { what: "Network card 1", from: "virtio 52:54:00:12:34:56, tcp 2222→22", to: "removed" },
    ]);
  });

  test("the second network card removed", () => {
    assert.deepEqual(diffSpecs(next({ nics: [NIC1, NIC2] }), RUNNING), [
      { what: "Network card 2", from: "e1000 52:54:00:00:00:02", to: "removed" },
    ]);
  });

  test("a model changed", () => {
    assert.deepEqual(diffSpecs(RUNNING, next({ nics: [{ ...NIC1, model: "rtl8139" }] })), [
      { what: "Network card 1", from: "virtio 52:54:00:12:34:56, tcp 2222→22", to: "rtl8139 52:54:00:12:34:56, tcp 2222→22" },
    ]);
  });

  test("a forward added", () => {
    const forwards = [...NIC1.forwards, { protocol: "udp" as const, hostPort: 5353, guestPort: 53 }];
    assert.deepEqual(diffSpecs(RUNNING, next({ nics: [{ ...NIC1, forwards }] })), [
      { what: "Network card 1", from: "virtio 52:54:00:12:34:56, tcp 2222→22", to: "virtio 52:54:00:12:34:56, tcp 2222→22 udp 5353→53" },
    ]);
  });

  test("a forward's ports changed", () => {
    assert.deepEqual(
      diffSpecs(RUNNING, next({ nics: [{ ...NIC1, forwards: [{ protocol: "tcp", hostPort: 2223, guestPort: 22 }] }] })),
      [{ what: "Network card 1", from: "virtio 52:54:00:12:34:56, tcp 2222→22", to: "virtio 52:54:00:12:34:56, tcp 2223→22" }],
    );
  });

  test("a forward's protocol changed", () => {
    assert.deepEqual(
      diffSpecs(RUNNING, next({ nics: [{ ...NIC1, forwards: [{ protocol: "udp", hostPort: 2222, guestPort: 22 }] }] })),
      [{ what: "Network card 1", from: "virtio 52:54:00:12:34:56, tcp 2222→22", to: "virtio 52:54:00:12:34:56, udp 2222→22" }],
    );
  });

  test("all forwards removed", () => {
    assert.deepEqual(diffSpecs(RUNNING, next({ nics: [{ ...NIC1, forwards: [] }] })), [
      { what: "Network card 1", from: "virtio 52:54:00:12:34:56, tcp 2222→22", to: "virtio 52:54:00:12:34:56" },
    ]);
  });

  test("model and forwards changed together: one entry", () => {
    assert.deepEqual(
      diffSpecs(RUNNING, next({ nics: [{ ...NIC1, model: "e1000", forwards: [{ protocol: "udp", hostPort: 6000, guestPort: 6001 }] }] })),
      [{ what: "Network card 1", from: "virtio 52:54:00:12:34:56, tcp 2222→22", to: "e1000 52:54:00:12:34:56, udp 6000→6001" }],
    );
  });

  test("a card replaced by one with another MAC: the old one removed, the new one added", () => {
    assert.deepEqual(diffSpecs(RUNNING, next({ nics: [NIC2] })), [
      { what: "Network card 1", from: "virtio 52:54:00:12:34:56, tcp 2222→22", to: "removed" },
      { what: "Network card (new)", from: "none", to: "e1000 52:54:00:00:00:02" },
    ]);
  });
});

describe("diffSpecs: everything at once", () => {
  test("fields first, then disks, CD-ROMs and network cards", () => {
    const changed = next({
      firmware: "uefi",
      memoryMiB: 1024,
      disks: [{ ...DISK1, bus: "scsi" }, DISK2],
      cdroms: [],
      nics: [NIC1, NIC2],
    });
    assert.deepEqual(diffSpecs(RUNNING, changed), [
      { what: "Firmware", from: "BIOS", to: "UEFI" },
      { what: "Memory", from: "256 MiB", to: "1 GiB" },
      { what: "Disk 1", from: "virtio, cache none", to: "scsi, cache none" },
      { what: "CD-ROM 1", from: "a.iso", to: "removed" },
      { what: "Network card (new)", from: "none", to: "e1000 52:54:00:00:00:02" },
    ]);
  });
});
