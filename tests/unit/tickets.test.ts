/**
 * Console tickets, passwords and sessions against a real SQLite database with the
 * project's migrations applied (tests/helpers/db.ts).
 */
import { createHash } from "node:crypto";
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createTestDb, seedBasics, type TestDb } from "../helpers/db";
import { consumeTicket, mintTicket } from "../../server/console/tickets";
import { hashPassword, verifyPassword } from "../../server/auth/password";
import { cookieFromHeader, createSession, SESSION_TTL_MS, userForSession } from "../../server/auth/sessions";
import { CONSOLE_TICKET_TTL_MS } from "../../server/domain/types";

const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

describe("console tickets (real SQLite)", () => {
  let t: TestDb;
  let basics: Awaited<ReturnType<typeof seedBasics>>;
  let otherGuestId: string;

  before(async () => {
    t = await createTestDb();
    basics = await seedBasics(t.db);
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
  after(async () => {
    await t.cleanup();
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
    assert.deepEqual(await consumeTicket(t.db, ticket, basics.guest.id), {
      ok: true,
      userId: basics.user.id,
      guestId: basics.guest.id,
    });
    assert.deepEqual(await consumeTicket(t.db, ticket, basics.guest.id), { ok: false, reason: "used" });
    const row = await t.db.consoleTicket.findUnique({ where: { id: sha256(ticket) } });
    assert.ok(row?.usedAt instanceof Date, "usedAt is recorded");
  });

  test("a ticket consumed just before it expires works; 31 s later it is refused as expired", async () => {
    const now = new Date();
    const early = await mint(now);
    assert.equal((await consumeTicket(t.db, early.ticket, basics.guest.id, new Date(now.getTime() + 29_000))).ok, true);

    const late = await mint(now);
    assert.deepEqual(await consumeTicket(t.db, late.ticket, basics.guest.id, new Date(now.getTime() + 31_000)), {
      ok: false,
      reason: "expired",
    });
    // An expired ticket is burnt: it never becomes valid again, even with a clock going backwards.
    assert.equal((await consumeTicket(t.db, late.ticket, basics.guest.id, now)).ok, false);
  });

  test("the wrong guest is refused, and the ticket is burnt afterwards", async () => {
    const { ticket } = await mint();
    assert.deepEqual(await consumeTicket(t.db, ticket, otherGuestId), { ok: false, reason: "wrong-guest" });
    assert.deepEqual(await consumeTicket(t.db, ticket, basics.guest.id), { ok: false, reason: "used" });
  });

  test("an unknown ticket is refused as unknown", async () => {
    const unknown = Buffer.alloc(32, 7).toString("base64url");
    assert.equal(unknown.length, 43);
    assert.deepEqual(await consumeTicket(t.db, unknown, basics.guest.id), { ok: false, reason: "unknown" });
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
      assert.deepEqual(await consumeTicket(t.db, ticket, basics.guest.id), { ok: false, reason: "malformed" });
    });
  }

  test("a valid ticket with a trailing character added is not accepted", async () => {
    const { ticket } = await mint();
    assert.equal((await consumeTicket(t.db, `${ticket}A`, basics.guest.id)).ok, false);
    // The real one still works: a malformed try does not burn someone else's ticket.
    assert.equal((await consumeTicket(t.db, ticket, basics.guest.id)).ok, true);
  });

  test("two concurrent consumes of the same ticket: exactly one succeeds", async () => {
    for (let round = 0; round < 5; round++) {
      const { ticket } = await mint();
      const results = await Promise.all([
        consumeTicket(t.db, ticket, basics.guest.id),
        consumeTicket(t.db, ticket, basics.guest.id),
        consumeTicket(t.db, ticket, basics.guest.id),
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
});

describe("passwords", () => {
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
  let basics: Awaited<ReturnType<typeof seedBasics>>;

  before(async () => {
    t = await createTestDb();
    basics = await seedBasics(t.db);
  });
  after(async () => {
    await t.cleanup();
  });

  test("a fresh session finds its user; only the hash is stored", async () => {
    const t0 = Date.now();
    const { secret, expiresAt } = await createSession(t.db, basics.user.id);
    assert.match(secret, /^[A-Za-z0-9_-]{43}$/);
    assert.ok(Math.abs(expiresAt.getTime() - (t0 + SESSION_TTL_MS)) < 5000);
    assert.deepEqual(await userForSession(t.db, secret), {
      id: basics.user.id,
      username: basics.user.username,
      role: "member",
      teamId: basics.team.id,
    });
    const rows = await t.db.session.findMany();
    assert.ok(rows.some((r) => r.id === sha256(secret)));
    assert.ok(!JSON.stringify(rows).includes(secret));
  });

  test("an admin's session reports role admin", async () => {
    const admin = await t.db.user.create({
      data: { username: "root-admin", passwordHash: "x", role: "admin", teamId: basics.team.id },
    });
    const { secret } = await createSession(t.db, admin.id);
    assert.equal((await userForSession(t.db, secret))?.role, "admin");
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
