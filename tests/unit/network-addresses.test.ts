/**
 * Guests' addresses from what the host sees (server/agent/networks/addresses.ts, watch.ts):
 * the book of each MAC's addresses from dnsmasq's leases and the bridge's neighbours, and
 * each guest's cards through the network's ports; the agent's watch of every network; and
 * what the web shows of them (a card's addresses, a list row's first IPv4).
 */
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { addressBook, bookKey, type Neighbour } from "../../server/agent/networks/addresses";
import type { Lease } from "../../server/agent/networks/dnsmasq";
import type { Port } from "../../server/agent/networks/ports";
import { AddressWatch, nicsByGuest, type GuestAddresses, type WatchedNetworks } from "../../server/agent/networks/watch";
import { cardAddresses, firstIpv4 } from "../../server/web/guest-list";

const lease = (mac: string, ip: string): Lease => ({ expires: 1_900_000_000, mac, ip, hostname: null });
const port = (guest: string, mac: string, tap = `ght${mac.slice(-2)}`): Port => ({ tap, mac, ip: null, guest, name: guest });

describe("a network's address book", () => {
  test("leases and answered neighbours by MAC, IPv4 first; failed, unanswered and link-local ones left out; one entry per address", () => {
    const neighbours: Neighbour[] = [
      { dst: "10.9.0.130", dev: "gh-x", lladdr: "52:54:00:00:00:01", state: ["REACHABLE"] },
      { dst: "fd00::5", dev: "gh-x", lladdr: "52:54:00:00:00:01", state: ["STALE"] },
      { dst: "fe80::5054:ff:fe00:1", dev: "gh-x", lladdr: "52:54:00:00:00:01", state: ["REACHABLE"] },
      { dst: "10.9.0.128", dev: "gh-x", lladdr: "52:54:00:00:00:01", state: ["DELAY"] },
      { dst: "10.9.0.140", dev: "gh-x", lladdr: "52:54:00:00:00:02", state: ["FAILED"] },
      { dst: "10.9.0.141", dev: "gh-x", state: ["INCOMPLETE"] },
      { dst: "10.9.0.142", dev: "gh-x", lladdr: "52:54:00:00:00:03", state: ["INCOMPLETE"] },
      { dst: "10.9.0.150", dev: "gh-x", lladdr: "52:54:00:AA:00:04", state: ["PERMANENT"] },
    ];
    const book = addressBook([lease("52:54:00:00:00:01", "10.9.0.128"), lease("52:54:00:00:00:02", "10.9.0.129")], neighbours);
    assert.deepEqual(
      [...book].sort(),
      [
        ["52:54:00:00:00:01", ["10.9.0.128", "10.9.0.130", "fd00::5"]],
        ["52:54:00:00:00:02", ["10.9.0.129"]],
        ["52:54:00:aa:00:04", ["10.9.0.150"]],
      ],
    );
  });

  test("equal books have equal keys, whatever order they were built in; a new address changes the key", () => {
    const a = addressBook([lease("52:54:00:00:00:01", "10.9.0.128"), lease("52:54:00:00:00:02", "10.9.0.129")], []);
    const b = addressBook([lease("52:54:00:00:00:02", "10.9.0.129"), lease("52:54:00:00:00:01", "10.9.0.128")], []);
    assert.equal(bookKey(a), bookKey(b));
    assert.notEqual(bookKey(a), bookKey(addressBook([lease("52:54:00:00:00:01", "10.9.0.128")], [])));
  });
});

describe("each guest's cards on a network, from its ports", () => {
  test("a card per port, in the ports' order, its IPv4 and IPv6 apart; a card with no address yet has empty lists", () => {
    const book = new Map([
      ["52:54:00:00:00:01", ["10.9.0.128", "fd00::5"]],
      ["52:54:00:00:00:03", ["10.9.0.131"]],
    ]);
    const guests = nicsByGuest("lab", [port("g1", "52:54:00:00:00:01"), port("g2", "52:54:00:00:00:02"), port("g1", "52:54:00:00:00:03")], book);
    assert.deepEqual(
      [...guests],
      [
        [
          "g1",
          [
            { mac: "52:54:00:00:00:01", network: "lab", ipv4: ["10.9.0.128"], ipv6: ["fd00::5"] },
            { mac: "52:54:00:00:00:03", network: "lab", ipv4: ["10.9.0.131"], ipv6: [] },
          ],
        ],
        ["g2", [{ mac: "52:54:00:00:00:02", network: "lab", ipv4: [], ipv6: [] }]],
      ],
    );
  });

  test("an address of a MAC no port has (a stopped guest's old lease, a stranger) belongs to no guest; no ports, no guests", () => {
    const book = new Map([["52:54:00:00:00:09", ["10.9.0.200"]]]);
    assert.deepEqual([...nicsByGuest("lab", [port("g1", "52:54:00:00:00:01")], book)], [["g1", [{ mac: "52:54:00:00:00:01", network: "lab", ipv4: [], ipv6: [] }]]]);
    assert.equal(nicsByGuest("lab", [], book).size, 0);
  });

  test("a port's MAC in capitals matches the book's lowercase one", () => {
    const guests = nicsByGuest("lab", [port("g1", "52:54:00:AB:00:01")], new Map([["52:54:00:ab:00:01", ["10.9.0.128"]]]));
    assert.deepEqual(guests.get("g1")?.[0]?.ipv4, ["10.9.0.128"]);
  });
});

describe("the agent's watch of every network's addresses (a stand-in manager, lease files in a folder)", () => {
  test("cards reported as ports come, addresses as leases are written, nothing once the ports go; a guest on two networks has both cards; a removed network is no longer followed", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-watch-"));
    const ports = new Map<string, Port[]>([["lab", []], ["lab2", []]]);
    for (const id of ports.keys()) fs.mkdirSync(path.join(dir, id));
    const events = new EventEmitter<{ applied: [string]; removed: [string]; ports: [string] }>();
    const networks = { list: () => [{ id: "lab" }], ports: (id: string) => ports.get(id) ?? [], events } as unknown as WatchedNetworks;
    const watch = new AddressWatch(networks, dir, { run: async () => "[]", alive: () => true }, 60_000);
    const lines: GuestAddresses[] = [];
    watch.on("addresses", (line) => lines.push(line));
    const next = (count: number) => waitUntil(() => lines.length >= count);
    try {
      watch.start();
      ports.set("lab", [port("g1", "52:54:00:00:00:01")]);
      events.emit("ports", "lab");
      assert.deepEqual(lines, [{ guest: "g1", nics: [{ mac: "52:54:00:00:00:01", network: "lab", ipv4: [], ipv6: [] }] }]);

      fs.writeFileSync(path.join(dir, "lab", "leases"), "1900000000 52:54:00:00:00:01 10.9.0.128 g1 *\n");
      await next(2);
      assert.deepEqual(lines[1]!.nics[0]!.ipv4, ["10.9.0.128"]);
      assert.deepEqual(watch.of("g1")[0]!.ipv4, ["10.9.0.128"]);

      // A second network, applied now, with another card of the same guest.
      fs.writeFileSync(path.join(dir, "lab2", "leases"), "1900000000 52:54:00:00:00:02 10.8.0.128 g1 *\n");
      ports.set("lab2", [port("g1", "52:54:00:00:00:02")]);
      events.emit("applied", "lab2");
      assert.deepEqual(lines[2], {
        guest: "g1",
        nics: [
          { mac: "52:54:00:00:00:01", network: "lab", ipv4: ["10.9.0.128"], ipv6: [] },
          { mac: "52:54:00:00:00:02", network: "lab2", ipv4: ["10.8.0.128"], ipv6: [] },
        ],
      });
      assert.deepEqual(watch.all(), [lines[2]]);

      // The same lease written again changes nothing: no line.
      fs.writeFileSync(path.join(dir, "lab", "leases"), "1900000000 52:54:00:00:00:01 10.9.0.128 g1 *\n");
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(lines.length, 3);

      // The guest stopped: its ports go, and so do its cards.
      ports.set("lab", []);
      events.emit("ports", "lab");
      ports.set("lab2", []);
      events.emit("ports", "lab2");
      assert.deepEqual(lines.slice(3), [
        { guest: "g1", nics: [{ mac: "52:54:00:00:00:02", network: "lab2", ipv4: ["10.8.0.128"], ipv6: [] }] },
        { guest: "g1", nics: [] },
      ]);
      assert.deepEqual(watch.all(), []);
      assert.deepEqual(watch.of("g1"), []);

      // Removed: a lease written in its folder afterwards is not looked at.
      events.emit("removed", "lab");
      ports.set("lab", [port("g2", "52:54:00:00:00:03")]);
      fs.writeFileSync(path.join(dir, "lab", "leases"), "1900000000 52:54:00:00:00:03 10.9.0.129 g2 *\n");
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(lines.length, 5);
    } finally {
      watch.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    assert.equal(events.listenerCount("applied") + events.listenerCount("removed") + events.listenerCount("ports"), 0, "stop() lets go of the manager's hooks");
  });
});

describe("the watch reading a lease file dnsmasq rewrites", () => {
  test("emptied and written again at once (as dnsmasq rewrites it): no line says the address went; a lease really gone is believed at the second read", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-watch-"));
    fs.mkdirSync(path.join(dir, "lab"));
    const file = path.join(dir, "lab", "leases");
    const both = "1900000000 52:54:00:00:00:01 10.9.0.128 g1 *\n1900000000 52:54:00:00:00:02 10.9.0.129 g2 *\n";
    fs.writeFileSync(file, both);
    const events = new EventEmitter<{ applied: [string]; removed: [string]; ports: [string] }>();
    const ports = [port("g1", "52:54:00:00:00:01"), port("g2", "52:54:00:00:00:02")];
    const networks = { list: () => [{ id: "lab" }], ports: () => ports, events } as unknown as WatchedNetworks;
    const watch = new AddressWatch(networks, dir, { run: async () => "[]", alive: () => true }, 60_000);
    const lines: GuestAddresses[] = [];
    watch.on("addresses", (line) => lines.push(line));
    try {
      watch.start();
      assert.deepEqual(lines.map((l) => [l.guest, l.nics[0]!.ipv4]), [["g1", ["10.9.0.128"]], ["g2", ["10.9.0.129"]]]);
      for (let i = 0; i < 5; i++) {
        fs.writeFileSync(file, "");
        await new Promise((r) => setTimeout(r, 1)); // the watch hears of the emptied file
        fs.writeFileSync(file, both.replace(/1900000000/g, String(1900000001 + i)));
        await new Promise((r) => setTimeout(r, 30));
      }
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(lines.length, 2, `no line while the file was rewritten: ${JSON.stringify(lines.slice(2))}`);
      // g2's lease released: gone from the file for good.
      fs.writeFileSync(file, both.split("\n")[0] + "\n");
      await waitUntil(() => lines.length === 3);
      assert.deepEqual(lines[2], { guest: "g2", nics: [{ mac: "52:54:00:00:00:02", network: "lab", ipv4: [], ipv6: [] }] });
    } finally {
      watch.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("what the web shows of a guest's addresses", () => {
  const status = {
    addresses: [
      { mac: "52:54:00:00:00:02", network: "lab", ipv4: [], ipv6: ["fd00::2"] },
      { mac: "52:54:00:00:00:01", network: "lab", ipv4: ["10.9.0.128", "10.9.0.130"], ipv6: [] },
      { mac: "52:54:00:00:00:03", network: "lab2", ipv4: ["10.8.0.128"], ipv6: [] },
    ],
  };

  test("a card's addresses by its MAC, whatever its case; none known: empty lists", () => {
    assert.deepEqual(cardAddresses(status, "52:54:00:00:00:01"), { ipv4: ["10.9.0.128", "10.9.0.130"], ipv6: [] });
    assert.deepEqual(cardAddresses(status, "52:54:00:00:00:02".toUpperCase()), { ipv4: [], ipv6: ["fd00::2"] });
    assert.deepEqual(cardAddresses(status, "52:54:00:00:00:09"), { ipv4: [], ipv6: [] });
    assert.deepEqual(cardAddresses(null, "52:54:00:00:00:01"), { ipv4: [], ipv6: [] });
    assert.deepEqual(cardAddresses({}, "52:54:00:00:00:01"), { ipv4: [], ipv6: [] });
  });

  test("the list row's first IPv4: in the order of the guest's cards, skipping cards with none; null when there is none", () => {
    assert.equal(firstIpv4(status, ["52:54:00:00:00:02", "52:54:00:00:00:03", "52:54:00:00:00:01"]), "10.8.0.128");
    assert.equal(firstIpv4(status, ["52:54:00:00:00:01", "52:54:00:00:00:03"]), "10.9.0.128");
    assert.equal(firstIpv4(status, ["52:54:00:00:00:02"]), null);
    assert.equal(firstIpv4(undefined, ["52:54:00:00:00:01"]), null);
    assert.equal(firstIpv4(status, []), null);
  });
});

async function waitUntil(check: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
