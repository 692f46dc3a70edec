/**
 * Ports of a managed network (server/agent/networks/manager.ts plug/unplug) with the real
 * kernel, nft and dnsmasq in a namespace the test makes: the addresses the agent chooses
 * stay clear of what dnsmasq still leases to other cards, a card coming back gets its
 * own last address again, and a running guest's cards plugged again keep theirs.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Networks, processAlive, type ManagedNetwork, type NetHost } from "../../server/agent/networks/manager";
import { Namespaces } from "../helpers/netns";

const LAB: ManagedNetwork = { id: "ports1", kind: "nat", subnet: "10.79.0.0/24", dhcp: "auto", domain: "ports.test" };

describe("a managed network's ports, in a network namespace", () => {
  const ns = new Namespaces();
  let inside = "";
  let dir = "";
  let networks: Networks;
  const host: NetHost = {
    run: async (command, args) => execFileSync("ip", ["netns", "exec", inside, command, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 }),
    alive: processAlive,
  };

  before(async () => {
    inside = ns.add("p");
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-ports-"));
    fs.chmodSync(dir, 0o711);
    networks = new Networks(path.join(dir, "networks"), host, path.join(dir, "hosts"));
    await networks.apply(LAB);
  });
  after(async () => {
    await networks?.remove(LAB.id).catch(() => {});
    ns.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("an address another card still holds a lease on is not given out; the card coming back gets its last one", async () => {
    // A stopped guest's lease, as dnsmasq keeps it (expiry in an hour), and an expired one.
    const leaseFile = path.join(dir, "networks", LAB.id, "leases");
    const inAnHour = Math.floor(Date.now() / 1000) + 3600;
    fs.writeFileSync(leaseFile, `${inAnHour} 52:54:00:79:00:99 10.79.0.128 old *\n${inAnHour - 7200} 52:54:00:79:00:98 10.79.0.129 older *\n`);
    const [fresh] = await networks.plug({ id: "guestp1", name: "fresh" }, [{ index: 0, mac: "52:54:00:79:00:01", network: LAB.id }]);
    assert.equal(fresh!.ip, "10.79.0.129", "the live lease's address is skipped; the expired one's is free");
    const [back] = await networks.plug({ id: "guestp2", name: "back" }, [{ index: 0, mac: "52:54:00:79:00:99", network: LAB.id }]);
    assert.equal(back!.ip, "10.79.0.128", "the card whose lease it is gets it again");
    assert.match(fs.readFileSync(path.join(dir, "hosts", `${LAB.id}.hosts`), "utf8"), /52:54:00:79:00:01,10\.79\.0\.129,fresh\n52:54:00:79:00:99,10\.79\.0\.128,back/);
    await networks.unplug("guestp1");
    await networks.unplug("guestp2");
    assert.deepEqual(networks.ports(LAB.id), []);
  });

  test("a reservation takes effect on a running card at once; one on an address another card holds is refused and changes nothing", async () => {
    const [a] = await networks.plug({ id: "guestr1", name: "alpha" }, [{ index: 0, mac: "52:54:00:79:00:11", network: LAB.id }]);
    const [b] = await networks.plug({ id: "guestr2", name: "beta" }, [{ index: 0, mac: "52:54:00:79:00:12", network: LAB.id }]);
    const rules = () => fs.readFileSync(path.join(dir, "networks", LAB.id, "rules.nft"), "utf8");
    await assert.rejects(networks.apply({ ...LAB, reservations: [{ mac: b!.mac, ip: a!.ip!, name: "beta" }] }), (err: Error & { code?: string }) => err.code === "conflict" && err.message.includes(`in use by a card of alpha`));
    assert.equal(networks.ports(LAB.id).find((p) => p.mac === b!.mac)!.ip, b!.ip, "nothing changed");
    await networks.apply({ ...LAB, reservations: [{ mac: b!.mac, ip: "10.79.0.77", name: "db" }] });
    const port = networks.ports(LAB.id).find((p) => p.mac === b!.mac)!;
    assert.deepEqual([port.ip, port.name], ["10.79.0.77", "db"]);
    assert.match(rules(), new RegExp(`iifname "${port.tap}" ip saddr != 0\\.0\\.0\\.0 ip saddr != 10\\.79\\.0\\.77 counter drop`), "its rules follow");
    const hosts = fs.readFileSync(path.join(dir, "hosts", `${LAB.id}.hosts`), "utf8");
    assert.equal(hosts.split("\n").filter((l) => l.startsWith(b!.mac)).length, 1, "one line per MAC");
    await networks.unplug("guestr1");
    await networks.unplug("guestr2");
  });

  test("a running guest's ports plugged again (a card plugged in or out beside them) keep their addresses and taps", async () => {
    const first = { index: 0, mac: "52:54:00:79:00:21", network: LAB.id };
    const second = { index: 1, mac: "52:54:00:79:00:22", network: LAB.id };
    const [a, b] = await networks.plug({ id: "guesth1", name: "hot" }, [first, second]);
    // The first card unplugged: the second, alone now, keeps its address (without a lease to prefer it).
    const [kept] = await networks.plug({ id: "guesth1", name: "hot" }, [second]);
    assert.deepEqual([kept!.ip, kept!.tap], [b!.ip, b!.tap]);
    // A card plugged in before it in the list takes a free address, not the second card's.
    const [added, again] = await networks.plug({ id: "guesth1", name: "hot" }, [{ ...first, index: 2, mac: "52:54:00:79:00:23" }, second]);
    assert.deepEqual([again!.ip, again!.tap], [b!.ip, b!.tap]);
    assert.notEqual(added!.ip, b!.ip);
    assert.equal(a!.ip !== b!.ip, true);
    await networks.unplug("guesth1");
  });
});
