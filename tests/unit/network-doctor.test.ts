/**
 * The network doctor's findings for hosts this machine is not (its real checks run in a
 * namespace in tests/integration/network-build.test.ts): a tool missing, no tun device, no
 * CAP_NET_ADMIN, an nft that cannot list the ruleset. The host is a stand-in here.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { diagnose, type DoctorHost } from "../../server/agent/networks/doctor";

function host(opts: { missing?: string[]; tun?: boolean; capEff?: string; nft?: string | Error; forward?: string }): DoctorHost {
  return {
    async run(command, args) {
      const line = [command, ...args].join(" ");
      for (const tool of opts.missing ?? []) if (line === `sh -c command -v ${tool}`) throw new Error("not found");
      if (line === "test -c /dev/net/tun" && opts.tun === false) throw new Error("no");
      if (line === "nft -j list ruleset") {
        if (opts.nft instanceof Error) throw opts.nft;
        return opts.nft ?? '{"nftables":[]}';
      }
      return "";
    },
    async readFile(file) {
      if (file === "/proc/sys/net/ipv4/ip_forward") return opts.forward ?? "1\n";
      if (file === "/proc/self/status") return `Name:\tagent\nCapEff:\t${opts.capEff ?? "000001ffffffffff"}\n`;
      return null;
    },
  };
}

describe("network doctor", () => {
  test("a healthy host has nothing to say", async () => {
    assert.deepEqual(await diagnose(host({})), []);
  });

  test("each missing piece is named with the command that fixes it", async () => {
    const findings = await diagnose(host({ missing: ["dnsmasq", "nft"], tun: false, capEff: "0000000000000000", forward: "0\n" }));
    const by = Object.fromEntries(findings.map((f) => [f.id, f]));
    assert.deepEqual(Object.keys(by).sort(), ["cap-net-admin", "ip-forward", "tool", "tun"]);
    assert.equal(by.tool!.fix, "apt-get install nftables dnsmasq-base");
    assert.equal(by.tun!.fix, "modprobe tun");
    assert.match(by["cap-net-admin"]!.fix, /CAP_NET_ADMIN/);
  });

  test("CAP_NET_ADMIN is bit 12 of the effective set: a set with only it passes, one with all but it does not", async () => {
    assert.deepEqual(await diagnose(host({ capEff: (1n << 12n).toString(16).padStart(16, "0") })), []);
    assert.equal((await diagnose(host({ capEff: (0xffffffffn ^ (1n << 12n)).toString(16).padStart(16, "0") }))).map((f) => f.id).join(), "cap-net-admin");
  });

  test("an nft that cannot list the ruleset means nftables is not in the kernel", async () => {
    const [finding] = await diagnose(host({ nft: new Error("netlink: Error: Could not process rule: Operation not supported") }));
    assert.equal(finding?.id, "module");
    assert.match(finding!.problem, /Operation not supported/);
    assert.match(finding!.fix, /^modprobe nf_tables/);
  });
});
