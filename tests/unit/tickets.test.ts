/**
 * Console tickets, passwords and sessions against a real SQLite database with the
 * project's migrations applied (tests/helpers/db.ts).
 */
import { createHash } from "node:crypto";
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { withSeededDb, type Basics, type TestDb } from "../helpers/db";
import { consumeTicket, mintShareTicket, mintTicket } from "../../server/console/tickets";
import { checkShare, createShare, findShare, listShares, revokeShare } from "../../server/console/shares";
import { closeStaleSessions, endSession, liveViewers, recentSessions, startSession, touchSessions } from "../../server/console/sessions";
import { SESSION_STALE_MS, SHARE_DURATIONS, viewerName, type ConsoleKind } from "../../server/console/types";
import { hashPassword, MAX_WAITING_HASHES, verifyPassword } from "../../server/auth/password";
import { cookieFromHeader, createSession, SESSION_TTL_MS, switchSessionTeam, userForSession } from "../../server/auth/sessions";
import { CONSOLE_TICKET_TTL_MS } from "../../server/domain/types";

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

describe("console tickets (real SQLite)", () => {
  let t: TestDb;
  let basics: Basics;
  let otherGuestId: string;

  withSeededDb(async (seeded) => {
    ({ t, basics } = seeded);
    const other = await t.db.guest.create({
      data: {
        name: "g2",
        vcpus: 1,
        memoryMiB: 256,
        bootOrder: "disk",
        ownerId: basics.user.id,
        teamId: basics.team.id,
        hostId: basics.host.id,
      },
    });
    otherGuestId = other.id;
  });

  const mint = (now?: Date) => mintTicket(t.db, basics.user.id, basics.guest.id, now);

  test("a minted ticket is 43 base64url characters (256 bits) and fresh every time", async () => {
    const tickets = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const { ticket } = await mint();
      assert.match(ticket, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(ticket, "base64url").length, 32, "256 bits of randomness");
      tickets.add(ticket);
    }
    assert.equal(tickets.size, 20, "tickets repeat");
  });

  test("a minted ticket names its user and guest and expires within 30 s", async () => {
    const now = new Date("2030-01-01T00:00:00Z");
    const minted = await mint(now);
    assert.equal(minted.userId, basics.user.id);
    assert.equal(minted.guestId, basics.guest.id);
    const ttl = minted.expiresAt.getTime() - now.getTime();
    assert.ok(ttl > 0 && ttl <= 30_000, `ttl ${ttl} ms`);
    assert.equal(ttl, CONSOLE_TICKET_TTL_MS);
    const row = await t.db.consoleTicket.findUnique({ where: { id: sha256(minted.ticket) } });
    assert.ok(row, "the row is keyed by the ticket's SHA-256");
    assert.equal(row.expiresAt.getTime(), minted.expiresAt.getTime());
    assert.equal(row.usedAt, null);
  });

  test("the database stores only the ticket's SHA-256, never the ticket", async () => {
    const { ticket } = await mint();
    const rows = await t.db.$queryRawUnsafe<Record<string, unknown>[]>(`SELECT * FROM "ConsoleTicket"`);
    assert.ok(rows.length > 0);
    const dump = JSON.stringify(rows, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    assert.ok(!dump.includes(ticket), "the raw ticket is in the ConsoleTicket table");
    // Nor any recognisable piece or encoding of it.
    assert.ok(!dump.includes(ticket.slice(0, 16)));
    assert.ok(!dump.includes(Buffer.from(ticket, "base64url").toString("hex")));
    assert.ok(dump.includes(sha256(ticket)), "the hash is what is stored");
  });

  test("consuming once succeeds and returns user and guest; reuse is refused as used", async () => {
    const { ticket } = await mint();
    assert.deepEqual(await consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: "vnc" }), {
      ok: true,
      userId: basics.user.id,
      shareId: null,
      guestId: basics.guest.id,
      kind: "vnc",
      viewOnly: false,
    });
    assert.deepEqual(await consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: "vnc" }), { ok: false, reason: "used" });
    const row = await t.db.consoleTicket.findUnique({ where: { id: sha256(ticket) } });
    assert.ok(row?.usedAt instanceof Date, "usedAt is recorded");
  });

  test("a ticket consumed just before it expires works; 31 s later it is refused as expired", async () => {
    const now = new Date();
    const early = await mint(now);
    assert.equal((await consumeTicket(t.db, early.ticket, { guestId: basics.guest.id, kind: "vnc" }, new Date(now.getTime() + 29_000))).ok, true);

    const late = await mint(now);
    assert.deepEqual(await consumeTicket(t.db, late.ticket, { guestId: basics.guest.id, kind: "vnc" }, new Date(now.getTime() + 31_000)), {
      ok: false,
      reason: "expired",
    });
    // An expired ticket is burnt: it never becomes valid again, even with a clock going backwards.
    assert.equal((await consumeTicket(t.db, late.ticket, { guestId: basics.guest.id, kind: "vnc" }, now)).ok, false);
  });

  test("the wrong guest is refused, and the ticket is burnt afterwards", async () => {
    const { ticket } = await mint();
    assert.deepEqual(await consumeTicket(t.db, ticket, { guestId: otherGuestId, kind: "vnc" }), { ok: false, reason: "wrong-guest" });
    assert.deepEqual(await consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: "vnc" }), { ok: false, reason: "used" });
  });

  test("an unknown ticket is refused as unknown", async () => {
    const unknown = Buffer.alloc(32, 7).toString("base64url");
    assert.equal(unknown.length, 43);
    assert.deepEqual(await consumeTicket(t.db, unknown, { guestId: basics.guest.id, kind: "vnc" }), { ok: false, reason: "unknown" });
    assert.equal(await t.db.consoleTicket.count({ where: { id: sha256(unknown) } }), 0, "no row was invented");
  });

  const malformed: [string, string | null][] = [
    ["null", null],
    ["empty", ""],
    ["too short", "abc"],
    ["42 chars", "A".repeat(42)],
    ["44 chars", "A".repeat(44)],
    ["standard base64 characters", `${"A".repeat(41)}+/`],
    ["padding", `${"A".repeat(42)}=`],
    ["SQL", `' OR 1=1 --${"A".repeat(32)}`],
    ["whitespace", ` ${"A".repeat(42)}`],
  ];
  for (const [name, ticket] of malformed) {
    test(`a malformed ticket (${name}) is refused as malformed`, async () => {
      assert.deepEqual(await consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: "vnc" }), { ok: false, reason: "malformed" });
    });
  }

  test("a valid ticket with a trailing character added is not accepted", async () => {
    const { ticket } = await mint();
    assert.equal((await consumeTicket(t.db, `${ticket}A`, { guestId: basics.guest.id, kind: "vnc" })).ok, false);
    // The real one still works: a malformed try does not burn someone else's ticket.
    assert.equal((await consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: "vnc" })).ok, true);
  });

  test("two concurrent consumes of the same ticket: exactly one succeeds", async () => {
    for (let round = 0; round < 5; round++) {
      const { ticket } = await mint();
      const results = await Promise.all([
        consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: "vnc" }),
        consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: "vnc" }),
        consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: "vnc" }),
      ]);
      const wins = results.filter((r) => r.ok);
      assert.equal(wins.length, 1, `round ${round}: ${JSON.stringify(results)}`);
      for (const r of results) if (!r.ok) assert.equal(r.reason, "used");
    }
  });

  test("minting removes tickets that expired more than a minute ago, and keeps fresh ones", async () => {
    const longAgo = new Date(Date.now() - 10 * 60_000);
    const stale = await mint(longAgo);
    const fresh = await mint();
    await mint(); // triggers the clean-up at the current time
    assert.equal(await t.db.consoleTicket.count({ where: { id: sha256(stale.ticket) } }), 0);
    assert.equal(await t.db.consoleTicket.count({ where: { id: sha256(fresh.ticket) } }), 1);
  });
  test("a ticket is bound to its console kind: a serial ticket opens no screen, and the other way round", async () => {
    const kinds: ConsoleKind[] = ["vnc", "serial"];
    for (const minted of kinds) {
      for (const asked of kinds) {
        const { ticket, kind } = await mintTicket(t.db, basics.user.id, basics.guest.id, new Date(), { kind: minted });
        assert.equal(kind, minted);
        const result = await consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: asked });
        if (minted === asked) assert.deepEqual(result, { ok: true, userId: basics.user.id, shareId: null, guestId: basics.guest.id, kind: asked, viewOnly: false });
        else assert.deepEqual(result, { ok: false, reason: "wrong-kind" }, `${minted} ticket used for ${asked}`);
        // Burnt either way.
        assert.deepEqual(await consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: minted }), { ok: false, reason: "used" });
      }
    }
  });

  test("the kind is stored with the ticket, default vnc", async () => {
    const plain = await mint();
    const serial = await mintTicket(t.db, basics.user.id, basics.guest.id, new Date(), { kind: "serial" });
    assert.equal((await t.db.consoleTicket.findUniqueOrThrow({ where: { id: sha256(plain.ticket) } })).kind, "vnc");
    assert.equal((await t.db.consoleTicket.findUniqueOrThrow({ where: { id: sha256(serial.ticket) } })).kind, "serial");
  });

  test("a view-only ticket says so when consumed", async () => {
    const { ticket } = await mintTicket(t.db, basics.user.id, basics.guest.id, new Date(), { viewOnly: true });
    const result = await consumeTicket(t.db, ticket, { guestId: basics.guest.id, kind: "vnc" });
    assert.ok(result.ok);
    assert.equal(result.viewOnly, true);
  });

  test("serial tickets live 30 s too, to the millisecond", async () => {
    const now = new Date("2031-05-05T10:00:00Z");
    const minted = await mintTicket(t.db, basics.user.id, basics.guest.id, now, { kind: "serial" });
    assert.equal(minted.expiresAt.getTime() - now.getTime(), CONSOLE_TICKET_TTL_MS);
    const edge = await mintTicket(t.db, basics.user.id, basics.guest.id, now, { kind: "serial" });
    assert.equal((await consumeTicket(t.db, minted.ticket, { guestId: basics.guest.id, kind: "serial" }, new Date(now.getTime() + CONSOLE_TICKET_TTL_MS - 1))).ok, true);
    assert.deepEqual(await consumeTicket(t.db, edge.ticket, { guestId: basics.guest.id, kind: "serial" }, new Date(now.getTime() + CONSOLE_TICKET_TTL_MS)), { ok: false, reason: "expired" });
  });
});

describe("view-only links and their tickets (real SQLite)", () => {
  let t: TestDb;
  let basics: Basics;
  let otherGuestId: string;

  withSeededDb(async (seeded) => {
    ({ t, basics } = seeded);
    otherGuestId = (
      await t.db.guest.create({
        data: { name: "g2", vcpus: 1, memoryMiB: 256, ownerId: basics.user.id, teamId: basics.team.id, hostId: basics.host.id },
      })
    ).id;
  });

  const share = (duration: keyof typeof SHARE_DURATIONS, now = new Date(), label?: string) =>
    createShare(t.db, { guestId: basics.guest.id, createdById: basics.user.id, duration, label }, now);

  test("a link's token is 256 random bits; only its SHA-256 is stored", async () => {
    const { token, id } = await share("1h", new Date(), "support");
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(token, "base64url").length, 32);
    assert.equal(id, sha256(token));
    const dump = JSON.stringify(await t.db.consoleShare.findMany());
    assert.ok(!dump.includes(token) && !dump.includes(token.slice(0, 16)), "the token is in the ConsoleShare table");
    assert.ok(dump.includes(sha256(token)));
  });

  for (const [duration, ms] of Object.entries(SHARE_DURATIONS) as Array<[keyof typeof SHARE_DURATIONS, number]>) {
    test(`a ${duration} link works until ${ms / 3_600_000} h after it was made, and not a millisecond longer`, async () => {
      const now = new Date("2031-01-01T12:00:00Z");
      const { token, expiresAt } = await share(duration, now);
      assert.equal(expiresAt.getTime() - now.getTime(), ms);
      const justBefore = await findShare(t.db, token, new Date(now.getTime() + ms - 1));
      assert.ok(justBefore.ok);
      assert.equal(justBefore.share.guestId, basics.guest.id);
      assert.deepEqual(await findShare(t.db, token, new Date(now.getTime() + ms)), { ok: false, reason: "expired" });
      assert.deepEqual(await findShare(t.db, token, new Date(now.getTime() + ms + 3_600_000)), { ok: false, reason: "expired" });
    });
  }

  test("a revoked link stops working at once and cannot be revoked twice", async () => {
    const { token, id } = await share("24h");
    assert.ok((await findShare(t.db, token)).ok);
    assert.equal(await revokeShare(t.db, otherGuestId, id), false, "another guest's link id does nothing");
    assert.ok((await findShare(t.db, token)).ok);
    assert.equal(await revokeShare(t.db, basics.guest.id, id), true);
    assert.deepEqual(await findShare(t.db, token), { ok: false, reason: "revoked" });
    assert.deepEqual(await checkShare(t.db, id), { ok: false, reason: "revoked" });
    assert.equal(await revokeShare(t.db, basics.guest.id, id), false);
  });

  test("an expired link cannot be revoked (nothing to end) and stays expired", async () => {
    const past = new Date(Date.now() - 2 * 3_600_000);
    const { token, id } = await share("1h", past);
    assert.equal(await revokeShare(t.db, basics.guest.id, id), false);
    assert.deepEqual(await findShare(t.db, token), { ok: false, reason: "expired" });
  });

  test("unknown and malformed tokens are refused", async () => {
    assert.deepEqual(await findShare(t.db, Buffer.alloc(32, 9).toString("base64url")), { ok: false, reason: "unknown" });
    for (const bad of [null, undefined, "", "abc", "A".repeat(44), `${"A".repeat(42)}=`, "../../etc/passwd"]) {
      assert.deepEqual(await findShare(t.db, bad), { ok: false, reason: "malformed" }, String(bad));
    }
  });

  test("the list shows working links and those that ended within a day, newest first, with their state", async () => {
    const now = new Date();
    await t.db.consoleShare.deleteMany();
    const old = await share("1h", new Date(now.getTime() - 3 * 24 * 3_600_000), "long gone");
    await share("1h", new Date(now.getTime() - 2 * 3_600_000), "expired");
    const revoked = await share("8h", new Date(now.getTime() - 60_000), "revoked");
    await revokeShare(t.db, basics.guest.id, revoked.id);
    const active = await share("24h", now, "active");
    const list = await listShares(t.db, basics.guest.id, now);
    assert.deepEqual(
      list.map((l) => [l.label, l.state]),
      [
        ["active", "active"],
        ["revoked", "revoked"],
        ["expired", "expired"],
      ],
    );
    assert.ok(!list.some((l) => l.id === old.id));
    assert.equal(list[0]!.id, active.id);
    assert.equal(list[0]!.createdBy, basics.user.username);
    assert.ok(!JSON.stringify(list).includes(active.token), "the list never holds a token");
  });

  test("a share ticket is view-only, for the screen, bound to its link and to no user", async () => {
    const { id } = await share("1h");
    const minted = await mintShareTicket(t.db, id, basics.guest.id);
    assert.equal(minted.userId, null);
    assert.equal(minted.shareId, id);
    assert.deepEqual(await consumeTicket(t.db, minted.ticket, { guestId: basics.guest.id, kind: "vnc" }), {
      ok: true,
      userId: null,
      shareId: id,
      guestId: basics.guest.id,
      kind: "vnc",
      viewOnly: true,
    });
    const serial = await mintShareTicket(t.db, id, basics.guest.id);
    assert.deepEqual(await consumeTicket(t.db, serial.ticket, { guestId: basics.guest.id, kind: "serial" }), { ok: false, reason: "wrong-kind" });
    const late = await mintShareTicket(t.db, id, basics.guest.id, new Date(Date.now() - 31_000));
    assert.deepEqual(await consumeTicket(t.db, late.ticket, { guestId: basics.guest.id, kind: "vnc" }), { ok: false, reason: "expired" });
  });

  test("deleting a link's guest removes the link and its tickets", async () => {
    const guest = await t.db.guest.create({
      data: { name: "doomed", vcpus: 1, memoryMiB: 256, ownerId: basics.user.id, teamId: basics.team.id, hostId: basics.host.id },
    });
    const made = await createShare(t.db, { guestId: guest.id, createdById: basics.user.id, duration: "1h" });
    await mintShareTicket(t.db, made.id, guest.id);
    await t.db.guest.delete({ where: { id: guest.id } });
    assert.equal(await t.db.consoleShare.count({ where: { id: made.id } }), 0);
    assert.equal(await t.db.consoleTicket.count({ where: { shareId: made.id } }), 0);
  });
});

describe("console session records (real SQLite)", () => {
  let t: TestDb;
  let basics: Basics;
  withSeededDb((seeded) => void ({ t, basics } = seeded));

  test("a session is live from start to end, then in the record with how it ended", async () => {
    const start = new Date();
    const id = await startSession(t.db, { guestId: basics.guest.id, userId: basics.user.id, shareId: null, kind: "vnc", viewOnly: false }, start);
    const live = await liveViewers(t.db, basics.guest.id, start);
    assert.deepEqual(live.map((v) => [v.username, v.kind, v.viewOnly, v.share]), [[basics.user.username, "vnc", false, null]]);
    await endSession(t.db, id, "Closed by the viewer (1000).", new Date(start.getTime() + 65_000));
    assert.deepEqual(await liveViewers(t.db, basics.guest.id, start), []);
    const [record] = await recentSessions(t.db, basics.guest.id);
    assert.equal(record!.id, id);
    assert.equal(record!.endReason, "Closed by the viewer (1000).");
    assert.equal(Date.parse(record!.endedAt!) - Date.parse(record!.startedAt), 65_000);
  });

  test("a viewer of a link without a label is named as a view-only link, live and in the record", async () => {
    const made = await createShare(t.db, { guestId: basics.guest.id, createdById: basics.user.id, duration: "1h" });
    const t0 = new Date();
    const id = await startSession(t.db, { guestId: basics.guest.id, userId: null, shareId: made.id, kind: "vnc", viewOnly: true }, t0);
    const live = (await liveViewers(t.db, basics.guest.id, t0)).filter((v) => v.id === id);
    assert.deepEqual(live.map((v) => [v.share, viewerName(v)]), [["", "view-only link"]]);
    await endSession(t.db, id, "closed");
    const record = (await recentSessions(t.db, basics.guest.id)).filter((r) => r.id === id);
    assert.deepEqual(record.map((r) => viewerName(r)), ["view-only link"]);
  });

  test("a share viewer is named by the link's label; a session nobody touches stops counting and is closed", async () => {
    const made = await createShare(t.db, { guestId: basics.guest.id, createdById: basics.user.id, duration: "1h", label: "support call" });
    const t0 = new Date();
    const id = await startSession(t.db, { guestId: basics.guest.id, userId: null, shareId: made.id, kind: "vnc", viewOnly: true }, t0);
    let live = await liveViewers(t.db, basics.guest.id, t0);
    assert.deepEqual(live.map((v) => [v.username, v.share, v.viewOnly]), [[null, "support call", true]]);
    assert.equal(viewerName(live[0]!), "view-only link “support call”");
    assert.equal(viewerName({ username: "ann", share: null }), "ann");
    // Touched: still live later on.
    const t1 = new Date(t0.getTime() + SESSION_STALE_MS - 1000);
    await touchSessions(t.db, [id], t1);
    live = await liveViewers(t.db, basics.guest.id, new Date(t1.getTime() + SESSION_STALE_MS - 1000));
    assert.equal(live.length, 1);
    // Not touched for longer than SESSION_STALE_MS: its web process died.
    const t2 = new Date(t1.getTime() + SESSION_STALE_MS + 1000);
    assert.deepEqual(await liveViewers(t.db, basics.guest.id, t2), []);
    assert.equal(await closeStaleSessions(t.db, t2), 1);
    const row = await t.db.consoleSession.findUniqueOrThrow({ where: { id } });
    assert.equal(row.endedAt?.getTime(), t1.getTime(), "it ended when it was last seen");
    assert.match(row.endReason ?? "", /web server stopped/);
  });
});


describe("passwords", () => {
  test("a flood of password checks is bounded: two hash at once, sixteen wait, the rest are refused as busy at once", async () => {
    const stored = await hashPassword("correct horse battery staple");
    const results = await Promise.allSettled(Array.from({ length: 40 }, (_, i) => verifyPassword(i % 2 ? "correct horse battery staple" : "wrong", stored)));
    const done = results.filter((r): r is PromiseFulfilledResult<boolean> => r.status === "fulfilled");
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    assert.equal(done.length, 2 + MAX_WAITING_HASHES);
    assert.ok(refused.every((r) => (r.reason as { code?: string }).code === "busy" && /Too many logins at once/.test(String(r.reason.message))));
    // The ones let in were answered rightly, in the order they came.
    assert.deepEqual(done.map((r) => r.value), results.slice(0, done.length).map((_, i) => i % 2 === 1));
    assert.equal(await verifyPassword("correct horse battery staple", stored), true, "and the slots are free again");
  });

  test("the right password verifies, wrong ones do not", async () => {
    const stored = await hashPassword("correct horse battery staple");
    assert.equal(await verifyPassword("correct horse battery staple", stored), true);
    for (const wrong of ["correct horse battery stapl", "Correct horse battery staple", "", "correct horse battery staple "]) {
      assert.equal(await verifyPassword(wrong, stored), false, `accepted ${JSON.stringify(wrong)}`);
    }
  });

  test("the stored form is scrypt with a salt, and contains no trace of the password", async () => {
    const password = "hunter2-Zebra!";
    const stored = await hashPassword(password);
    assert.match(stored, /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    assert.ok(!stored.includes(password));
    assert.ok(!stored.includes("hunter2"));
    assert.ok(!stored.includes(Buffer.from(password).toString("base64url")));
    assert.ok(!stored.includes(Buffer.from(password).toString("hex")));
  });

  test("the same password hashes differently each time (salted), and both verify", async () => {
    const a = await hashPassword("same");
    const b = await hashPassword("same");
    assert.notEqual(a, b);
    assert.equal(await verifyPassword("same", a), true);
    assert.equal(await verifyPassword("same", b), true);
  });

  test("a stored value that is not scrypt never verifies", async () => {
    for (const stored of ["x", "", "plain-password", "bcrypt$10$abc$def", "scrypt$16384$8$1$$"]) {
      assert.equal(await verifyPassword("x", stored), false, `verified against ${JSON.stringify(stored)}`);
    }
  });
});

describe("sessions (real SQLite)", () => {
  let t: TestDb;
  let basics: Basics;
  withSeededDb((seeded) => void ({ t, basics } = seeded));

  test("a fresh session finds its user; only the hash is stored", async () => {
    const t0 = Date.now();
    const { secret, expiresAt } = await createSession(t.db, basics.user.id);
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(Math.abs(expiresAt.getTime() - (t0 + SESSION_TTL_MS)) < 5000);
    assert.deepEqual(await userForSession(t.db, secret), {
      kind: "user",
      id: basics.user.id,
      username: basics.user.username,
      admin: false,
      disabled: false,
      teams: new Map([[basics.team.id, "member"]]),
      teamId: basics.team.id,
      mustChangePassword: false,
      mustEnrollTotp: false,
      sessionId: sha256(secret),
    });
    const rows = await t.db.session.findMany();
    assert.ok(rows.some((r) => r.id === sha256(secret)));
    assert.ok(!JSON.stringify(rows).includes(secret));
  });

  test("a session works in the user's default team until switched to another of theirs; never one they are not in", async () => {
    const other = await t.db.team.create({ data: { name: "second-team" } });
    const stranger = await t.db.team.create({ data: { name: "not-theirs" } });
    const u = await t.db.user.create({ data: { username: "two-teams", passwordHash: "x", teamId: basics.team.id, memberships: { create: [{ teamId: basics.team.id, role: "member" }, { teamId: other.id, role: "viewer" }] } } });
    const { secret } = await createSession(t.db, u.id);
    const before = (await userForSession(t.db, secret))!;
    assert.equal(before.teamId, basics.team.id);
    await switchSessionTeam(t.db, secret, before, other.id);
    assert.equal((await userForSession(t.db, secret))!.teamId, other.id);
    await assert.rejects(switchSessionTeam(t.db, secret, before, stranger.id), /no such team, or you are not in it/);
    // Taken out of the team the session works in: it falls back to one they are still in.
    await t.db.membership.delete({ where: { userId_teamId: { userId: u.id, teamId: other.id } } });
    assert.equal((await userForSession(t.db, secret))!.teamId, basics.team.id);
  });

  test("a disabled user's sessions find no one", async () => {
    const u = await t.db.user.create({ data: { username: "to-disable", passwordHash: "x", teamId: basics.team.id, memberships: { create: { teamId: basics.team.id, role: "owner" } } } });
    const { secret } = await createSession(t.db, u.id);
    assert.ok(await userForSession(t.db, secret));
    await t.db.user.update({ where: { id: u.id }, data: { disabledAt: new Date() } });
    assert.equal(await userForSession(t.db, secret), null);
  });

  test("an admin's session says so", async () => {
    const admin = await t.db.user.create({
      data: { username: "root-admin", passwordHash: "x", role: "admin", teamId: basics.team.id },
    });
    const { secret } = await createSession(t.db, admin.id);
    assert.equal((await userForSession(t.db, secret))?.admin, true);
  });

  test("an unknown, empty, missing or oversized secret finds no one", async () => {
    assert.equal(await userForSession(t.db, Buffer.alloc(32, 1).toString("base64url")), null);
    assert.equal(await userForSession(t.db, ""), null);
    assert.equal(await userForSession(t.db, null), null);
    assert.equal(await userForSession(t.db, undefined), null);
    assert.equal(await userForSession(t.db, "A".repeat(10_000)), null);
  });

  test("the hash itself is not a valid secret", async () => {
    const { secret } = await createSession(t.db, basics.user.id);
    assert.equal(await userForSession(t.db, sha256(secret)), null);
  });

  test("an expired session finds no one", async () => {
    const { secret } = await createSession(t.db, basics.user.id);
    assert.ok(await userForSession(t.db, secret));
    await t.db.session.update({ where: { id: sha256(secret) }, data: { expiresAt: new Date(Date.now() - 1000) } });
    assert.equal(await userForSession(t.db, secret), null);
  });
});

describe("cookieFromHeader", () => {
  const TABLE: [string, string | undefined, string | null][] = [
    ["the only cookie", "gh_session=abc", "abc"],
    ["among others, with spaces", "theme=dark; gh_session=abc ;  lang=en", "abc"],
    ["the first of the others", "gh_session=first; x=1", "first"],
    ["percent-encoded", "gh_session=a%20b%3Dc", "a b=c"],
    ["a value containing =", "gh_session=a=b=c", "a=b=c"],
    ["a base64url secret", "gh_session=AbC-_09xyz", "AbC-_09xyz"],
    ["no header", undefined, null],
    ["empty header", "", null],
    ["absent", "theme=dark; lang=en", null],
    ["a longer name that ends with it", "xgh_session=evil", null],
    ["a longer name that starts with it", "gh_session_old=evil", null],
    ["a value that merely contains the name", "x=gh_session=evil", null],
    ["a part without =", "gh_session", null],
  ];
  for (const [name, header, expected] of TABLE) {
    test(name, () => assert.equal(cookieFromHeader(header, "gh_session"), expected));
  }
});
