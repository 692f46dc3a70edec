/** A guest spec that boots the demo ISO, for tests to adjust. */
import type { AgentClient } from "../../server/agent-client";
import type { DiskSpec, GuestSpec } from "../../server/domain/types";

export function testSpec(id: string, overrides: Partial<GuestSpec> = {}): GuestSpec {
  return {
    id,
    name: `test-${id.slice(0, 8)}`,
    machine: "q35",
    firmware: "bios",
    vcpus: 1,
    sockets: 1,
    threads: 1,
    memoryMiB: 256,
    disks: [],
    cdroms: [{ iso: "demo.iso" }],
    nics: [],
    bootOrder: ["cdrom", "disk"],
    display: "std",
    serial: true,
    rtc: "utc",
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
