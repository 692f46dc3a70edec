/** Networks. So far each team has one, "user": QEMU's user-mode NAT with built-in DHCP. */
import { db } from "../db/client";

export async function userModeNetwork(team: { teamId: string; ownerId: string; hostId: string }): Promise<{ id: string }> {
  return db.network.upsert({
    where: { teamId_name: { teamId: team.teamId, name: "user" } },
    create: { name: "user", mode: "user", ownerId: team.ownerId, teamId: team.teamId, hostId: team.hostId },
    update: {},
    select: { id: true },
  });
}
