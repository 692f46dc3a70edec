/** A guest spec that boots the demo ISO, for tests to adjust. */
import type { GuestSpec } from "../../server/domain/types";

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
