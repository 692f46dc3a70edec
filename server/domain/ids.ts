/** Generated identifiers: disk volume ids and MAC addresses. */
import { randomBytes } from "node:crypto";

/** 96 random bits, as the agent's volume id pattern wants them. */
export function newVolumeId(): string {
  return randomBytes(12).toString("hex");
}

/** QEMU's locally administered prefix 52:54:00 and three random bytes. */
export function newMac(): string {
  return ["52", "54", "00", ...[...randomBytes(3)].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}
