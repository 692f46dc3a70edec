/** A guest spec that boots the demo ISO, for tests to adjust. */
import type { AgentClient } from "../../server/agent-client";
import type { DiskSpec, GuestSpec } from "../../server/domain/types";
import type { GuestDefinition } from "../../server/domain/validation";

/** The hardware every test guest starts from: a q35 BIOS machine, one vCPU, 256 MiB, a serial port. */
const BASIC = { machine: "q35", firmware: "bios", vcpus: 1, sockets: 1, threads: 1, memoryMiB: 256, display: "std", serial: true, rtc: "utc" } as const;

export function testSpec(id: string, overrides: Partial<GuestSpec> = {}): GuestSpec {
  return {
    id,
    name: `test-${id.slice(0, 8)}`,
    ...BASIC,
    disks: [],
    cdroms: [{ iso: "demo.iso" }],
    nics: [],
    bootOrder: ["cdrom", "disk"],
    ...overrides,
  };
}

/** A disk in the agent's default storage folder, named `<volume>.<format>`. */
export function testDisk(volume: string, format: "qcow2" | "raw" = "qcow2", overrides: Partial<DiskSpec> = {}): DiskSpec {
  return { volume, pool: "default", file: `${volume}.${format}`, format, backing: [], encrypted: false, bus: "virtio", cache: "none", readOnly: false, ...overrides };
}

/** Makes the image `testDisk(volume, format)` names, `gib` GiB large. */
export async function createTestImage(client: AgentClient, volume: string, format: "qcow2" | "raw", gib: number): Promise<void> {
  await client.createImage({ pool: "default", file: `${volume}.${format}`, format, bytes: gib * 2 ** 30, volume });
}

/** A guest definition (what the create form, an import or a clone makes a guest from): one vCPU, `disks` new qcow2 disks of these sizes in GiB, no CD-ROM, no network. */
export function testDefinition(name: string, disks: number[] = [], overrides: Partial<GuestDefinition> = {}): GuestDefinition {
  return {
    guesthouse: 1,
    name,
    ...BASIC,
    bootOrder: ["disk"],
    description: "",
    tags: [],
    disks: disks.map((sizeGiB) => ({ sizeGiB, format: "qcow2", bus: "virtio", cache: "none", readOnly: false })),
    cdroms: [],
    nics: [],
    ...overrides,
  };
}
