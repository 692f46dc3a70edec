/**
 * Hardware options against real QEMU: machine types, disk buses, NIC models, port
 * forwards, serial on/off. The guest reports the block devices it sees on serial.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { startTestAgent, waitFor, type TestAgent } from "../helpers/agent";
import { SerialShell } from "../helpers/serial-shell";
import { connects, freeForwardPort } from "../helpers/net";
import { createTestImage, testDisk, testSpec } from "../helpers/specs";

const BOOT_TIMEOUT_MS = 90_000;

const spec = testSpec;

/** The local addresses that listen on a TCP port, from /proc/net/tcp (state 0A). */
function listenersOn(port: number): string[] {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  return fs
    .readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hexPort}`) && f[3] === "0A")
    .map((f) => f[1]!.split(":")[0]!.match(/../g)!.reverse().map((h) => parseInt(h, 16)).join("."));
}

/** The values the demo guest printed after "GUESTHOUSE-<what> " on its serial port, one per line. */
function reported(log: string, what: string): string[] {
  return [...log.matchAll(new RegExp(`^GUESTHOUSE-${what} (.*?)\\r?$`, "gm"))].map((m) => m[1]!.trim());
}

describe("hardware options with real QEMU", () => {
  let agent: TestAgent;
  const serialLog = (id: string) => {
    try {
      return fs.readFileSync(path.join(agent.dataDir, "guests", id, "serial.log"), "utf8");
    } catch {
      return "";
    }
  };

  before(async () => {
    agent = await startTestAgent();
  });
  after(async () => {
    await agent?.cleanup();
  });

  test("q35 with a SCSI disk, a read-only virtio disk, an e1000 card and a TCP port forward", async () => {
    await createTestImage(agent.client, "volscsi00001", "qcow2", 2);
    await createTestImage(agent.client, "volvirt00001", "raw", 1);
    const port = await freeForwardPort();
    const s = spec("guesthw000001", {
      vcpus: 2,
      sockets: 1,
      threads: 2,
      disks: [
        testDisk("volscsi00001", "qcow2", { bus: "scsi", cache: "writeback" }),
        testDisk("volvirt00001", "raw", { readOnly: true }),
      ],
      nics: [{ mac: "52:54:00:00:00:e1", model: "e1000", mode: "user", isolated: false, forwards: [{ protocol: "tcp", hostPort: port, guestPort: 22 }] }],
    });
    const status = await agent.client.start(s);
    assert.equal(status.state, "running");
    assert.deepEqual(status.spec, s, "the agent reports the spec it runs");
    await waitFor("the boot marker", () => serialLog(s.id).includes("GUESTHOUSE-DEMO-READY"), BOOT_TIMEOUT_MS);
    const log = serialLog(s.id);
    assert.match(log, /GUESTHOUSE-DISK sda 4194304/, "the 2 GiB SCSI disk is seen by the guest");
    assert.match(log, /GUESTHOUSE-DISK vda 2097152/, "the 1 GiB virtio disk is seen by the guest");
    assert.deepEqual(reported(log, "NIC"), ["8086:100e"], "the guest sees one Intel 82540EM (e1000) card");
    assert.ok(await connects(port), `QEMU listens on the forwarded host port ${port}`);
    assert.deepEqual(listenersOn(port), ["127.0.0.1"], "on the configured address only (127.0.0.1 by default), not on every interface");
    await agent.client.forceOff(s.id);
    assert.equal(await connects(port), false, "the forward is gone with the guest");
  });

  test("pc machine with an IDE disk, an rtl8139 card and network-first boot order", async () => {
    await createTestImage(agent.client, "volide000001", "qcow2", 1);
    const s = spec("guesthw000002", {
      machine: "pc",
      disks: [testDisk("volide000001", "qcow2", { bus: "ide" })],
      nics: [{ mac: "52:54:00:00:00:81", model: "rtl8139", mode: "user", isolated: false, forwards: [] }],
      bootOrder: ["network", "cdrom", "disk"],
      rtc: "localtime",
      display: "virtio",
    });
    await agent.client.start(s);
    await waitFor("the boot marker", () => serialLog(s.id).includes("GUESTHOUSE-DEMO-READY"), BOOT_TIMEOUT_MS);
    const log = serialLog(s.id);
    assert.match(log, /GUESTHOUSE-DISK sda 2097152/, "the 1 GiB disk is on the pc's IDE controller (ata_piix: sda)");
    assert.deepEqual(reported(log, "NIC"), ["10ec:8139"], "the guest sees one Realtek RTL8139 card");
    // What the firmware was told, read by the guest from fw_cfg: the card first, then the
    // CD-ROM (IDE unit 1), then the disk (IDE unit 0), then nothing else (strict boot).
    const order = reported(log, "BOOTORDER")[0]?.split(" ") ?? [];
    assert.equal(order.length, 4, order.join(" "));
    assert.match(order[0]!, /\/ethernet@3\//, "the network card first");
    assert.match(order[1]!, /\/ide@1,1\/drive@0\/disk@1$/, "the CD-ROM second");
    assert.match(order[2]!, /\/ide@1,1\/drive@0\/disk@0$/, "the disk third");
    assert.equal(order[3], "HALT", "and no other device");
    // What the firmware did with it, on the serial console (SeaBIOS writes there too): the
    // card's network boot tried first and found nothing, then the CD-ROM booted.
    const rom = log.indexOf("Booting from ROM");
    const nothing = log.indexOf("Nothing to boot", rom);
    const cd = log.indexOf("Booting from DVD/CD", nothing);
    assert.ok(rom >= 0 && nothing > rom && cd > nothing, "network boot tried (iPXE: nothing to boot), then the CD-ROM");
    assert.equal(log.indexOf("Booting from Hard Disk"), -1, "the disk was never needed");
    await agent.client.forceOff(s.id);
  });

  test("UEFI (OVMF) boots the demo ISO, with a variables file of the guest's own that outlives a stop", async () => {
    const s = spec("guesthw000005", { firmware: "uefi" });
    const status = await agent.client.start(s);
    assert.ok(status.argv!.some((a) => a.startsWith("if=pflash") && a.includes("OVMF_CODE")));
    await waitFor("the boot marker under UEFI", () => serialLog(s.id).includes("GUESTHOUSE-DEMO-READY"), BOOT_TIMEOUT_MS);
    const vars = path.join(agent.dataDir, "guests", s.id, "efivars.fd");
    assert.ok(fs.existsSync(vars), "the guest has its own UEFI variables");
    await agent.client.shutdown(s.id);
    await waitFor("the guest to power off", async () => (await agent.client.guest(s.id)).state === "stopped", 60_000);
    assert.ok(fs.existsSync(vars), "the variables survive a stop");
  });

  test("a port forward outside the host's range (a dashboard's port, a TLS VNC port, any other service's) is refused before QEMU runs", async () => {
    for (const hostPort of [3000, 5900, 19999, 30000]) {
      const s = spec(`guestfwd${hostPort}`.padEnd(13, "0"), { nics: [{ mac: "52:54:00:00:00:f1", model: "virtio", mode: "user", isolated: false, forwards: [{ protocol: "tcp", hostPort, guestPort: 22 }] }] });
      await assert.rejects(agent.client.start(s), (err: Error & { code?: string }) => err.code === "invalid-input" && /outside the ports this host forwards to guests \(20000–29999\)/.test(err.message), String(hostPort));
      assert.equal((await agent.client.guest(s.id)).state, "stopped");
    }
  });

  test("a user-mode guest reaches the host's own services at 10.0.2.2; an isolated card (restrict=on) does not", async () => {
    // A service of the host's, on its loopback only, that a guest should not see.
    const service = net.createServer((socket) => socket.end("HOST-LOOPBACK-SERVICE\n"));
    await new Promise<void>((resolve) => service.listen(0, "127.0.0.1", resolve));
    const port = (service.address() as net.AddressInfo).port;
    const reach = async (id: string, isolated: boolean) => {
      const s = spec(id, { nics: [{ mac: `52:54:00:00:01:${isolated ? "02" : "01"}`, model: "virtio", mode: "user", isolated, forwards: [] }] });
      await agent.client.start(s);
      const shell = await SerialShell.open(agent, s.id);
      try {
        await shell.run("ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2");
        return await shell.run(`nc -w 3 10.0.2.2 ${port} </dev/null; echo tried`, 30_000);
      } finally {
        shell.close();
        await agent.client.forceOff(s.id);
      }
    };
    try {
      assert.match(await reach("guestnetopen1", false), /HOST-LOOPBACK-SERVICE/, "by default it does: the README says so, and how to close it");
      assert.doesNotMatch(await reach("guestnetiso01", true), /HOST-LOOPBACK-SERVICE/, "isolated, it does not");
    } finally {
      service.close();
    }
  });

  test("serial off: no serial socket or log, and the guest still runs", async () => {
    const s = spec("guesthw000003", { serial: false });
    const status = await agent.client.start(s);
    assert.equal(status.state, "running");
    const dir = path.join(agent.dataDir, "guests", s.id);
    assert.equal(fs.existsSync(path.join(agent.dataDir, "run", s.id, "serial.sock")), false);
    assert.ok(fs.existsSync(path.join(agent.dataDir, "run", s.id, "vnc.sock")), "(where it would be)");
    assert.equal(fs.existsSync(path.join(dir, "serial.log")), false);
    assert.ok(!status.argv!.includes("-serial"));
    await agent.client.forceOff(s.id);
  });

  test("a topology that does not divide is refused before QEMU runs", async () => {
    await assert.rejects(
      agent.client.start(spec("guesthw000004", { vcpus: 3, sockets: 2 })),
      (err: Error & { code?: string }) => err.code === "invalid-input" && /multiple of sockets/.test(err.message),
    );
  });
});

describe("clones with real qemu-img and QEMU", () => {
  let agent: TestAgent;
  const disk = (volume: string, format = "qcow2") => path.join(agent.dataDir, "disks", `${volume}.${format}`);
  const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");
  /** Runs a qemu-io command; a failed pattern check makes qemu-io exit 1, which throws here. */
  const qemuIo = (file: string, command: string) =>
    execFileSync("qemu-io", ["-f", "qcow2", "-c", command, file], { encoding: "utf8" });

  before(async () => {
    agent = await startTestAgent();
    await createTestImage(agent.client, "volbase00001", "qcow2", 1);
    qemuIo(disk("volbase00001"), "write -P 0xab 0 1M");
  });
  after(async () => {
    await agent?.cleanup();
  });

  test("a full clone is an independent copy with the same contents", async () => {
    await agent.client.cloneImage({ pool: "default", file: "volbase00001.qcow2", format: "qcow2" }, { pool: "default", file: "volfull00001.qcow2" }, "full");
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", disk("volfull00001")], { encoding: "utf8" }));
    assert.equal(info["backing-filename"], undefined);
    assert.equal(info["virtual-size"], 1024 ** 3);
    execFileSync("qemu-img", ["check", disk("volfull00001")]);
    execFileSync("qemu-img", ["compare", disk("volbase00001"), disk("volfull00001")]); // exit 0: identical
  });

  test("a linked clone boots, the guest writes to it, and its base is unchanged", async () => {
    const baseBefore = sha256(disk("volbase00001"));
    await agent.client.cloneImage({ pool: "default", file: "volbase00001.qcow2", format: "qcow2" }, { pool: "default", file: "vollink00001.qcow2" }, "linked");
    const info = JSON.parse(execFileSync("qemu-img", ["info", "--output=json", disk("vollink00001")], { encoding: "utf8" }));
    assert.equal(info["backing-filename"], "volbase00001.qcow2", "the base is named relative to the clone (same folder)");

    // Its base as the dashboard records it: QEMU gets it as a node of its own.
    const s = spec("guestlink0001", {
      disks: [testDisk("vollink00001", "qcow2", { backing: [{ pool: "default", file: "volbase00001.qcow2", format: "qcow2" }] })],
    });
    await agent.client.start(s);
    const shell = await SerialShell.open(agent, s.id);
    try {
      assert.match(await shell.run("dd if=/dev/vda bs=8 count=1 2>/dev/null | od -An -tx1"), /ab ab ab ab ab ab ab ab/, "the guest sees its base's data through the clone");
      // Overwrite the first MiB of its disk.
      assert.match(await shell.run("dd if=/dev/zero of=/dev/vda bs=1M count=1 conv=fsync 2>/dev/null && echo wrote-$((6*7))"), /wrote-42/);
    } finally {
      shell.close();
    }
    await agent.client.forceOff(s.id);

    assert.equal(sha256(disk("volbase00001")), baseBefore, "the base is byte for byte unchanged");
    assert.doesNotMatch(qemuIo(disk("vollink00001"), "read -P 0 0 1M"), /verification failed/, "the clone holds the guest's zeros");
    assert.doesNotMatch(qemuIo(disk("volbase00001"), "read -P 0xab 0 1M"), /verification failed/, "the base still holds its pattern");
  });

  test("a qcow2 whose header names a backing file the records do not: QEMU never opens it, the guest sees only the disk's own data", async () => {
    // The header names the base (as a linked clone's would); the spec says the disk has none.
    await agent.client.cloneImage({ pool: "default", file: "volbase00001.qcow2", format: "qcow2" }, { pool: "default", file: "volhint00001.qcow2" }, "linked");
    const s = spec("guesthint0001", { disks: [testDisk("volhint00001")] });
    const status = await agent.client.start(s);
    const shell = await SerialShell.open(agent, s.id);
    try {
      assert.match(await shell.run("dd if=/dev/vda bs=8 count=1 2>/dev/null | od -An -tx1"), /00 00 00 00 00 00 00 00/, "zeros where the base holds 0xab: it was not opened");
      const open = fs.readdirSync(`/proc/${status.pid}/fd`).map((fd) => fs.readlinkSync(`/proc/${status.pid}/fd/${fd}`));
      assert.ok(!open.includes(disk("volbase00001")), "QEMU has no descriptor of the file the header names");
      assert.ok(open.includes(disk("volhint00001")));
    } finally {
      shell.close();
    }
    await agent.client.forceOff(s.id);
  });

  test("cloning onto an existing volume is refused and leaves it alone", async () => {
    const before = sha256(disk("volfull00001"));
    await assert.rejects(
      agent.client.cloneImage({ pool: "default", file: "volbase00001.qcow2", format: "qcow2" }, { pool: "default", file: "volfull00001.qcow2" }, "full"),
      (err: Error & { code?: string }) => err.code === "conflict",
    );
    assert.equal(sha256(disk("volfull00001")), before);
  });
});
