/**
 * Team self-service at scale: 50 teams, 1,000 users, 10,000 guests (each with a disk).
 * Measured side by side in one run:
 *
 *   - `GET /` (the guest list, full server render) for a member of one team and for an
 *     admin, against the page's own query for the same user run in this process (the
 *     raw read): targets member ≤ 150 ms, admin ≤ 200 ms;
 *   - a create checked against the team's quotas (every limit set: the worst case), against
 *     the same create in a plain transaction: target ≤ 2 ms added (median difference);
 *   - the SQL statements the policy costs a page: the session read (which brings the
 *     user's teams and roles) counted through Prisma's query log: target at most one.
 *
 *   node --import tsx bench/teams-scale.ts
 *   BENCH_REQUESTS=50 node --import tsx bench/teams-scale.ts
 *
 * Needs a built app (.next). Prints PASS or MISS per target and exits 0 either way (1
 * only if the benchmark could not run).
 */
import { randomBytes } from "node:crypto";
import { PrismaBetterSQLite3 } from "@prisma/adapter-better-sqlite3";
import { createSession, SESSION_COOKIE, userForSession } from "../server/auth/sessions";
import { PrismaClient } from "../server/db/generated/client";
import { QUOTA_RESOURCES } from "../server/domain/types";
import { guestListQuery } from "../server/web/guest-list";
import { useAsProcessDatabase } from "../tests/helpers/db";
import { startTestStack, type TestStack } from "../tests/helpers/web";
import { machineLine, median, missingPrerequisite, ms, percentile, verdict } from "./stats";

const TEAMS = 50;
const USERS = 1000;
const GUESTS = 10_000;
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 30);
const WARMUP = 5;
const CREATES = Number(process.env.BENCH_CREATES ?? 200);
const MEMBER_LIMIT_MS = 150;
const ADMIN_LIMIT_MS = 200;
const QUOTA_LIMIT_MS = 2;

const newId = () => randomBytes(12).toString("hex");

async function seed(stack: TestStack) {
  const db = stack.database.db;
  const host = await db.host.findUniqueOrThrow({ where: { name: "local" } });
  const teams = Array.from({ length: TEAMS }, (_, t) => ({ id: newId(), name: `team-${String(t).padStart(2, "0")}`, nameKey: `team-${String(t).padStart(2, "0")}` }));
  await db.team.createMany({ data: teams });
  // 20 people a team: an owner, 2 operators, 15 members, 2 viewers.
  const roleAt = (i: number) => (i === 0 ? "owner" : i < 3 ? "operator" : i < 18 ? "member" : "viewer");
  const users = Array.from({ length: USERS }, (_, u) => {
    const team = teams[u % TEAMS]!;
    return { id: newId(), username: `user-${String(u).padStart(4, "0")}`, usernameKey: `user-${String(u).padStart(4, "0")}`, passwordHash: "x", teamId: team.id, role: "member", _role: roleAt(Math.floor(u / TEAMS)) };
  });
  await db.user.createMany({ data: users.map(({ _role, ...u }) => u) });
  await db.membership.createMany({ data: users.map((u) => ({ userId: u.id, teamId: u.teamId, role: u._role })) });
  const creators = users.filter((u) => u._role !== "viewer");
  const guests = [];
  const disks = [];
  for (let g = 0; g < GUESTS; g++) {
    const owner = creators[g % creators.length]!;
    const id = newId();
    guests.push({ id, name: `guest-${String(g).padStart(5, "0")}`, vcpus: 1 + (g % 4), memoryMiB: 256 * (1 + (g % 4)), ownerId: owner.id, teamId: owner.teamId, hostId: host.id });
    const volume = newId();
    disks.push({ volume, file: `${volume}.qcow2`, format: "qcow2", bus: "virtio", sizeBytes: 20n * 2n ** 30n, guestId: id, ownerId: owner.id, teamId: owner.teamId, hostId: host.id });
  }
  for (let i = 0; i < GUESTS; i += 2000) {
    await db.guest.createMany({ data: guests.slice(i, i + 2000) });
    await db.disk.createMany({ data: disks.slice(i, i + 2000) });
  }
  // Every limit on the first team, set high enough that the measured creates pass.
  const big: Record<string, bigint> = { guests: 1_000_000n, vcpus: 1_000_000n, memoryMiB: 2n ** 30n, diskBytes: 2n ** 52n, snapshots: 1_000_000n, isoBytes: 2n ** 52n, tasks: 1000n };
  await db.quota.createMany({ data: QUOTA_RESOURCES.map((resource) => ({ teamId: teams[0]!.id, userId: "", resource, limit: big[resource]! })) });
  const member = users.find((u) => u._role === "member" && u.teamId === teams[0]!.id)!;
  await db.quota.createMany({ data: QUOTA_RESOURCES.map((resource) => ({ teamId: teams[0]!.id, userId: member.id, resource, limit: big[resource]! })) });
  return { host, team: teams[0]!, member };
}

async function timePage(url: string, cookie: string): Promise<number> {
  const t = performance.now();
  const res = await fetch(url, { headers: { cookie }, redirect: "manual" });
  await res.text();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
  return performance.now() - t;
}

async function main(): Promise<number> {
  const missing = missingPrerequisite({ build: true });
  if (missing) {
    console.error(missing);
    return 1;
  }
  console.log(`teams-scale: ${TEAMS} teams, ${USERS} users, ${GUESTS} guests; ${REQUESTS} requests after ${WARMUP} warm-ups`);
  console.log(`machine: ${machineLine()}`);
  let stack: TestStack | null = null;
  try {
    stack = await startTestStack();
    const db = stack.database.db;
    const t0 = performance.now();
    const { host, team, member } = await seed(stack);
    console.log(`seeded in ${ms(performance.now() - t0)}`);
    const admin = await db.user.findUniqueOrThrow({ where: { username: stack.admin.username } });
    const memberSecret = (await createSession(db, member.id)).secret;
    const adminSecret = (await createSession(db, admin.id)).secret;
    const memberUser = (await userForSession(db, memberSecret))!;
    const adminUser = (await userForSession(db, adminSecret))!;
    const url = `${stack.baseUrl}/`;

    // The guest list, alternating page and raw read, for the member and for the admin.
    const results: Record<string, { page: number[]; raw: number[]; rows: number }> = {};
    for (const [who, secret, user] of [["member", memberSecret, memberUser], ["admin", adminSecret, adminUser]] as const) {
      const cookie = `${SESSION_COOKIE}=${secret}`;
      for (let i = 0; i < WARMUP; i++) {
        await timePage(url, cookie);
        await guestListQuery(db, user, 1);
      }
      const page: number[] = [];
      const raw: number[] = [];
      let rows = 0;
      for (let i = 0; i < REQUESTS; i++) {
        page.push(await timePage(url, cookie));
        const t = performance.now();
        rows = (await guestListQuery(db, user, 1)).length;
        raw.push(performance.now() - t);
      }
      results[who] = { page, raw, rows };
    }

    // A create checked against every quota of the team, beside the same create unchecked.
    useAsProcessDatabase(stack.database);
    const { withinQuota } = await import("../server/web/quotas");
    const scope = { teamId: team.id, userId: member.id };
    const row = (n: number, kind: string) => ({ name: `bench-${kind}-${n}`, vcpus: 1, memoryMiB: 256, ownerId: member.id, teamId: team.id, hostId: host.id });
    const checked: number[] = [];
    const plain: number[] = [];
    for (let i = 0; i < CREATES; i++) {
      let t = performance.now();
      await withinQuota(scope, { guests: 1, diskBytes: 2 ** 30 }, (tx) => tx.guest.create({ data: row(i, "checked"), select: { id: true } }));
      checked.push(performance.now() - t);
      t = performance.now();
      await db.$transaction((tx) => tx.guest.create({ data: row(i, "plain"), select: { id: true } }));
      plain.push(performance.now() - t);
    }
    const added = median(checked.slice(10)) - median(plain.slice(10));

    // The policy's cost per page: the statements one session read makes (it brings the teams and roles).
    const counting = new PrismaClient({ adapter: new PrismaBetterSQLite3({ url: stack.database.url }), log: [{ emit: "event", level: "query" }] });
    const statements: string[] = [];
    counting.$on("query", (e) => statements.push(e.query));
    await userForSession(counting, memberSecret); // the first may write "last seen"
    statements.length = 0;
    await userForSession(counting, memberSecret);
    const policyStatements = statements.length;
    await counting.$disconnect();

    const line = (name: string, v: number[]) =>
      console.log(`${name.padEnd(44)} ${ms(median(v)).padStart(9)} ${ms(percentile(v, 90)).padStart(9)} ${ms(Math.min(...v)).padStart(9)} ${ms(Math.max(...v)).padStart(9)}`);
    console.log("");
    console.log(`${"result".padEnd(44)}    median       p90       min       max`);
    line(`GET / as a member (${results.member!.rows} rows shown)`, results.member!.page);
    line("  raw read: the page's query for the member", results.member!.raw);
    line(`GET / as an admin (${results.admin!.rows} rows shown)`, results.admin!.page);
    line("  raw read: the page's query for the admin", results.admin!.raw);
    line("create checked against 7 + 7 quotas", checked.slice(10));
    line("  the same create, unchecked", plain.slice(10));
    console.log("");
    const m = median(results.member!.page);
    const a = median(results.admin!.page);
    console.log(`ratio member page / raw read = ${(m / median(results.member!.raw)).toFixed(2)}; admin page / raw read = ${(a / median(results.admin!.raw)).toFixed(2)}`);
    console.log(`target: member's list ${ms(m)} <= ${MEMBER_LIMIT_MS} ms: ${verdict(m <= MEMBER_LIMIT_MS)}`);
    console.log(`target: admin's list ${ms(a)} <= ${ADMIN_LIMIT_MS} ms: ${verdict(a <= ADMIN_LIMIT_MS)}`);
    console.log(`target: a quota check adds ${ms(added)} <= ${QUOTA_LIMIT_MS} ms to a create (ratio checked/unchecked ${(median(checked.slice(10)) / median(plain.slice(10))).toFixed(2)}): ${verdict(added <= QUOTA_LIMIT_MS)}`);
    console.log(`target: the policy costs ${policyStatements} SQL statement(s) per page (the session read with the user's teams and roles) <= 1: ${verdict(policyStatements <= 1)}`);
    if (policyStatements > 1) for (const s of statements) console.log(`  ${s.slice(0, 160)}`);
    return 0;
  } catch (err) {
    console.error("teams-scale: the benchmark failed:", err);
    if (stack) console.error(`web output:\n${stack.output().slice(-3000)}`);
    return 1;
  } finally {
    await stack?.cleanup();
  }
}

main().then((code) => process.exit(code));
