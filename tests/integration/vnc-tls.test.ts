/**
 * The optional TLS VNC endpoint for native viewers (GUESTHOUSE_VNC_TLS=on), against real
 * QEMU: the certificates the agent makes, a guest's own TCP port from the configured
 * range, what a plain VNC client gets (nothing but VeNCrypt), the VeNCrypt x509vnc
 * handshake with the server certificate checked against the CA the agent hands out,
 * one-time passwords for it, port exhaustion, adoption after an agent restart; and
 * with the default (off): no TCP port, no tls-creds.
 *
 * The RFB and VeNCrypt steps follow QEMU's ui/vnc.c and ui/vnc-auth-vencrypt.c: the
 * server offers security type 19 (VeNCrypt) only; it sends VeNCrypt version 0.2, the
 * client answers 0.2, the server acks with 0, sends one sub-type (u32 261, x509vnc);
 * the client picks it, the server answers 1 and starts TLS; inside TLS comes the usual
 * VNC authentication (16-byte DES challenge, u32 SecurityResult).
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import { after, before, describe, test } from "node:test";
import tls from "node:tls";
import { parseCertificateNames, parsePortRange, vncTlsConfig, readAgentSettings } from "../../server/agent/config";
import { certificateNames, ensureVncTls, qemuTlsCopy, tlsFiles } from "../../server/agent/tls";
import { GuesthouseError } from "../../server/domain/errors";
import { startTestAgent, waitFor, within, type TestAgent } from "../helpers/agent";
import { collect, vncResponse } from "../helpers/rfb";
import { testSpec } from "../helpers/specs";
import { story } from "../helpers/story";

const LOOPBACK = "127.0.0.1";
const VENCRYPT = 19;
const X509VNC = 261;

// ---------------------------------------------------------------------------------------------
// Connections and the RFB handshake

function connectTcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({ host: LOOPBACK, port });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** RFB 3.8 version exchange; resolves with the security types the server offers. */
async function rfbSecurityTypes(socket: Duplex, rx: ReturnType<typeof collect>): Promise<number[]> {
  await rx.until(12);
  assert.equal(rx.take(12).toString("latin1"), "RFB 003.008\n");
  socket.write("RFB 003.008\n");
  await rx.until(1);
  const count = rx.take(1)[0]!;
  assert.ok(count > 0, "the server offers security types");
  await rx.until(count);
  return [...rx.take(count)];
}

/** After a failed SecurityResult (u32 1): its reason string. */
async function failureReason(rx: ReturnType<typeof collect>): Promise<string> {
  await rx.until(4);
  const length = rx.take(4).readUInt32BE(0);
  await rx.until(length);
  return rx.take(length).toString("utf8");
}

type Login = { ok: true; width: number; height: number; update: number } | { ok: false; reason: string };

/**
 * A native viewer's whole way in: RFB version, VeNCrypt 0.2 with x509vnc, TLS checked
 * against `ca` for `servername`, VNC authentication with `password`; on success also
 * ClientInit/ServerInit and one FramebufferUpdate. TLS errors reject.
 */
async function nativeLogin(port: number, ca: string | null, password: string, checkName = LOOPBACK): Promise<Login & { authorized?: boolean }> {
  const socket = await connectTcp(port);
  try {
    const rx = collect(socket);
    assert.deepEqual(await rfbSecurityTypes(socket, rx), [VENCRYPT], "VeNCrypt is the only security type");
    socket.write(Buffer.from([VENCRYPT]));
    await rx.until(2);
    assert.deepEqual([...rx.take(2)], [0, 2], "VeNCrypt version 0.2");
    socket.write(Buffer.from([0, 2]));
    await rx.until(2);
    assert.equal(rx.take(1)[0], 0, "the server accepts version 0.2");
    const subtypeCount = rx.take(1)[0]!;
    await rx.until(4 * subtypeCount);
    const subtypes = Array.from({ length: subtypeCount }, () => rx.take(4).readUInt32BE(0));
    assert.deepEqual(subtypes, [X509VNC], "x509vnc: x509 TLS, then VNC authentication");
    const choice = Buffer.alloc(4);
    choice.writeUInt32BE(X509VNC);
    socket.write(choice);
    await rx.until(1);
    assert.equal(rx.take(1)[0], 1, "the server accepts x509vnc and starts TLS");
    assert.equal(rx.detach().length, 0, "nothing in clear after the accept");

    const secure = await within("the TLS handshake", new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({
        socket,
        ...(ca === null ? {} : { ca }),
        checkServerIdentity: (_host, cert) => tls.checkServerIdentity(checkName, cert),
        minVersion: "TLSv1.2",
      });
      s.once("secureConnect", () => resolve(s));
      s.once("error", reject);
    }), 15_000);
    const authorized = secure.authorized;
    const srx = collect(secure);
    await srx.until(16);
    secure.write(vncResponse(password, srx.take(16)));
    await srx.until(4);
    if (srx.take(4).readUInt32BE(0) !== 0) {
      const reason = await failureReason(srx);
      secure.destroy();
      return { ok: false, reason, authorized };
    }
    secure.write(Buffer.from([1])); // ClientInit: shared
    await srx.until(24);
    const width = srx.take(2).readUInt16BE(0);
    const height = srx.take(2).readUInt16BE(0);
    srx.take(16); // pixel format
    const nameLength = srx.take(4).readUInt32BE(0);
    await srx.until(nameLength);
    srx.take(nameLength);
    secure.write(Buffer.from([3, 0, 0, 0, 0, 0, 0, 16, 0, 16])); // FramebufferUpdateRequest 16x16
    await srx.until(1);
    const update = srx.take(1)[0]!;
    secure.destroy();
    return { ok: true, width, height, update, authorized };
  } finally {
    socket.destroy();
  }
}

/** The TCP ports a process listens on (its socket inodes, matched in /proc/net/tcp{,6}). */
function listeningPortsOf(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of fs.readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === "0A" && inodes.has(f[9]!)) ports.push(Number.parseInt(f[1]!.split(":")[1]!, 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once("error", () => resolve(false));
    probe.listen({ host: LOOPBACK, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/** Two free consecutive ports at or above 5900 (QEMU's VNC displays start there). */
async function freePortPair(): Promise<number> {
  const start = 5900 + 40 + Math.floor(Math.random() * 800);
  for (let p = start; p < start + 400; p++) {
    if ((await portFree(p)) && (await portFree(p + 1))) return p;
  }
  throw new Error("no two free ports found above 5900");
}

const conflict = (pattern: RegExp) => (err: GuesthouseError) => {
  assert.equal(err.code, "conflict", err.message);
  assert.match(err.message, pattern);
  return true;
};

// ---------------------------------------------------------------------------------------------

describe("TLS VNC configuration", () => {
  test("port ranges: at least 5900 (VNC display 0), at most 65535, first ≤ last", () => {
    assert.deepEqual(parsePortRange("5900-5999"), { firstPort: 5900, lastPort: 5999 });
    assert.deepEqual(parsePortRange(" 5901 "), { firstPort: 5901, lastPort: 5901 });
    for (const bad of ["5899-5910", "6000-5999", "5900-70000", "59a0", "", "5900-", "-5900"]) {
      assert.throws(() => parsePortRange(bad), /GUESTHOUSE_VNC_TLS_PORTS/, bad);
    }
  });

  test("certificate names: DNS names and IPs only, so nothing else reaches openssl's configuration", () => {
    assert.deepEqual(parseCertificateNames("vm.example.com, 10.0.0.5,::1"), ["vm.example.com", "10.0.0.5", "::1"]);
    assert.deepEqual(parseCertificateNames(undefined), []);
    for (const bad of ["a b", "x\nDNS.9 = evil", "a,b_c", "-lead.example", "@alt"]) {
      assert.throws(() => parseCertificateNames(bad), /GUESTHOUSE_VNC_TLS_NAMES/, JSON.stringify(bad));
    }
    assert.deepEqual(certificateNames("host1", ["Host1", "10.0.0.5"], "0.0.0.0"), ["host1", "10.0.0.5"], "once each; a wildcard address is no name");
    assert.deepEqual(certificateNames("host1", [], "192.168.1.4"), ["host1", "192.168.1.4"], "a specific address is a name");
  });

  test("off by default; when on, viewers connect to the first extra name, else a specific address, else the host name", () => {
    const base = { GUESTHOUSE_ACCEL: "tcg", GUESTHOUSE_DATA_DIR: "/tmp/gh-config-only" } as Record<string, string> as NodeJS.ProcessEnv;
    assert.equal(readAgentSettings(base).vncTls, null);
    const on = readAgentSettings({ ...base, GUESTHOUSE_VNC_TLS: "on" }).vncTls!;
    assert.equal(on.address, "0.0.0.0");
    assert.deepEqual([on.firstPort, on.lastPort], [5900, 5999]);
    assert.equal(on.dir, "/tmp/gh-config-only/tls");
    assert.equal(on.passwordSeconds, 60);
    const env = (extra: Record<string, string>) => ({ GUESTHOUSE_VNC_TLS: "on", GUESTHOUSE_VNC_TLS_ADDRESS: "0.0.0.0", GUESTHOUSE_VNC_TLS_PORTS: "5900-5999", GUESTHOUSE_VNC_TLS_PASSWORD_SECONDS: 60, ...extra }) as never;
    assert.equal(vncTlsConfig(env({}), "/d", "box")!.connectHost, "box");
    assert.equal(vncTlsConfig(env({ GUESTHOUSE_VNC_TLS_ADDRESS: "10.1.2.3" }), "/d", "box")!.connectHost, "10.1.2.3");
    assert.equal(vncTlsConfig(env({ GUESTHOUSE_VNC_TLS_NAMES: "vm.example.com" }), "/d", "box")!.connectHost, "vm.example.com");
    assert.throws(() => readAgentSettings({ ...base, GUESTHOUSE_VNC_TLS: "yes" }), /GUESTHOUSE_VNC_TLS/);
    assert.throws(() => readAgentSettings({ ...base, GUESTHOUSE_VNC_TLS: "on", GUESTHOUSE_VNC_TLS_ADDRESS: "example.com" }), /IP address/);
  });

  test("port forwards: their own range (20000-29999) on 127.0.0.1 by default; a range overlapping the TLS VNC ports, privileged ports or a bad address are refused", () => {
    const base = { GUESTHOUSE_ACCEL: "tcg", GUESTHOUSE_DATA_DIR: "/tmp/gh-config-only" } as Record<string, string> as NodeJS.ProcessEnv;
    assert.deepEqual(readAgentSettings(base).forwards, { address: "127.0.0.1", firstPort: 20000, lastPort: 29999 });
    assert.deepEqual(readAgentSettings({ ...base, GUESTHOUSE_FORWARD_PORTS: "40000-40100", GUESTHOUSE_FORWARD_ADDRESS: "0.0.0.0" }).forwards, { address: "0.0.0.0", firstPort: 40000, lastPort: 40100 });
    assert.throws(() => readAgentSettings({ ...base, GUESTHOUSE_VNC_TLS: "on", GUESTHOUSE_FORWARD_PORTS: "5000-6000" }), /overlaps GUESTHOUSE_VNC_TLS_PORTS/);
    assert.doesNotThrow(() => readAgentSettings({ ...base, GUESTHOUSE_VNC_TLS: "off", GUESTHOUSE_FORWARD_PORTS: "5000-6000" }), "TLS VNC off: its ports are nobody's");
    for (const bad of ["80-90", "30000-20000", "20000", "20000-70000", "a-b"]) {
      assert.throws(() => readAgentSettings({ ...base, GUESTHOUSE_FORWARD_PORTS: bad }), /GUESTHOUSE_FORWARD_PORTS/, bad);
    }
    assert.throws(() => readAgentSettings({ ...base, GUESTHOUSE_FORWARD_ADDRESS: "::1" }), /IPv4 address/);
  });

  test("QEMU's copy holds the three files it reads, never the CA's key, readable by its user alone", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-tls-"));
    try {
      await ensureVncTls(path.join(dir, "tls"), ["box"], "box");
      const owner = process.getuid?.() === 0 ? { uid: 4000001, gid: 4000001 } : null;
      await qemuTlsCopy(path.join(dir, "tls"), path.join(dir, "copy"), owner);
      assert.deepEqual(fs.readdirSync(path.join(dir, "copy")).sort(), ["ca-cert.pem", "server-cert.pem", "server-key.pem"]);
      for (const name of ["", "ca-cert.pem", "server-cert.pem", "server-key.pem"]) {
        const stat = fs.statSync(path.join(dir, "copy", name));
        assert.equal(stat.mode & 0o077, 0, `${name || "the folder"} is its owner's alone`);
        if (owner) assert.equal(stat.uid, owner.uid, `${name || "the folder"} belongs to QEMU's user`);
      }
      assert.equal(fs.readFileSync(path.join(dir, "copy", "server-key.pem"), "utf8"), fs.readFileSync(path.join(dir, "tls", "server-key.pem"), "utf8"));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test("ensureVncTls keeps a valid CA and certificate, and issues a new certificate (same CA) when the names change", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gh-tls-"));
    try {
      const first = await ensureVncTls(path.join(dir, "tls"), ["box", "127.0.0.1"], "box");
      assert.deepEqual(first.made, ["ca", "server"]);
      const files = tlsFiles(path.join(dir, "tls"));
      const caBefore = fs.readFileSync(files.caCert, "utf8");
      const certBefore = fs.readFileSync(files.serverCert, "utf8");
      assert.deepEqual((await ensureVncTls(path.join(dir, "tls"), ["box", "127.0.0.1"], "box")).made, [], "nothing to do");
      assert.equal(fs.readFileSync(files.serverCert, "utf8"), certBefore);
      assert.deepEqual((await ensureVncTls(path.join(dir, "tls"), ["box", "127.0.0.1", "vm.example.com"], "box")).made, ["server"]);
      assert.equal(fs.readFileSync(files.caCert, "utf8"), caBefore, "viewers that trust the CA go on trusting it");
      const cert = new X509Certificate(fs.readFileSync(files.serverCert));
      assert.ok(cert.verify(new X509Certificate(caBefore).publicKey), "signed by the same CA");
      assert.equal(cert.subjectAltName, "DNS:box, IP Address:127.0.0.1, DNS:vm.example.com");
      // A CA whose key is gone cannot sign: a new CA, and a new certificate from it.
      fs.rmSync(files.caKey);
      assert.deepEqual((await ensureVncTls(path.join(dir, "tls"), ["box"], "box")).made, ["ca", "server"], "a CA without its key is made anew");
      assert.deepEqual(fs.readdirSync(path.join(dir, "tls")).sort(), ["ca-cert.pem", "ca-key.pem", "server-cert.pem", "server-key.pem"], "no work files left");
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

story("TLS VNC endpoint for native viewers, with real QEMU", (step) => {
  let agent: TestAgent;
  let firstPort: number;
  const spec = testSpec("guesttls00001", { name: "tls-demo" });
  /** Guests with nothing to boot: they only hold ports. */
  const filler = (id: string) => testSpec(id, { name: `fill-${id.slice(-4)}`, cdroms: [], serial: false });
  const tlsDir = () => path.join(agent.dataDir, "tls");

  before(async () => {
    firstPort = await freePortPair();
    agent = await startTestAgent({
      GUESTHOUSE_VNC_TLS: "on",
      GUESTHOUSE_VNC_TLS_ADDRESS: LOOPBACK,
      GUESTHOUSE_VNC_TLS_PORTS: `${firstPort}-${firstPort + 1}`,
    });
    await agent.client.start(spec);
  });
  after(async () => {
    await agent?.cleanup();
  });

  step("the agent made a CA and a server certificate for the address, private keys 0600 in a 0700 folder", async () => {
    const files = tlsFiles(tlsDir());
    assert.equal(fs.statSync(tlsDir()).mode & 0o777, 0o700);
    assert.equal(fs.statSync(files.caKey).mode & 0o777, 0o600);
    assert.equal(fs.statSync(files.serverKey).mode & 0o777, 0o600);
    const ca = new X509Certificate(fs.readFileSync(files.caCert));
    const cert = new X509Certificate(fs.readFileSync(files.serverCert));
    assert.ok(ca.ca, "the CA certificate is a CA");
    assert.ok(!cert.ca, "the server certificate is not");
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), "signed by the CA");
    assert.match(cert.subjectAltName ?? "", /IP Address:127\.0\.0\.1/);
    assert.match(agent.output(), /made a new certificate authority for TLS VNC/);
    // The dashboard's download is exactly that certificate.
    assert.equal(await agent.client.vncCaCertificate(), fs.readFileSync(files.caCert, "utf8"));
  });

  step("the running guest has its own port from the range, in its status and its argv; QEMU listens on it", async () => {
    const status = await agent.client.guest(spec.id);
    assert.deepEqual(status.vncTls, { host: LOOPBACK, port: firstPort });
    const display = firstPort - 5900;
    const argv = status.argv!;
    const object = argv[argv.indexOf("-object") + 1];
    // QEMU reads a copy of the three files it needs from its run folder (never the CA's key), gone once it started.
    const copy = path.join(agent.dataDir, "run", spec.id, "tls");
    assert.equal(object, `tls-creds-x509,id=vnctls,dir=${copy},endpoint=server,verify-peer=off`);
    assert.equal(fs.existsSync(copy), false, "the copy went once QEMU had read it");
    assert.ok(argv.includes(`${LOOPBACK}:${display},tls-creds=vnctls,password=on,id=vnc-tls`), "the second -vnc");
    assert.deepEqual(listeningPortsOf(status.pid!), [firstPort], "QEMU's only TCP listener is the TLS display");
    const socket = await connectTcp(firstPort);
    socket.destroy();
  });

  step("a plain VNC client gets only VeNCrypt offered and no way to the framebuffer", async () => {
    for (const attempt of [1, 2]) {
      const socket = await connectTcp(firstPort);
      const rx = collect(socket);
      assert.deepEqual(await rfbSecurityTypes(socket, rx), [VENCRYPT], "no None (1), no plain VNC authentication (2)");
      socket.write(Buffer.from([attempt])); // ask for None, then for VNC authentication without TLS
      await rx.until(4);
      assert.equal(rx.take(4).readUInt32BE(0), 1, "SecurityResult: failed");
      assert.match(await failureReason(rx), /Authentication failed/);
      await waitFor("the server to close", () => socket.destroyed || socket.readableEnded, 5000, 20);
      socket.destroy();
    }
  });

  step("TLS against the CA from GET /v1/tls/ca, then the one-time password opens the screen; a wrong one does not", async () => {
    const ca = await agent.client.vncCaCertificate();
    const issued = await agent.client.nativeVncPassword(spec.id);
    assert.match(issued.password, /^[A-Za-z0-9]{8}$/);
    assert.equal(issued.port, firstPort);
    assert.equal(issued.host, LOOPBACK);
    assert.equal(issued.expiresInSeconds, 60);

    const wrong = await nativeLogin(firstPort, ca, issued.password === "xxxxxxxx" ? "yyyyyyyy" : "xxxxxxxx");
    assert.equal(wrong.authorized, true, "the server certificate checks out against the CA");
    assert.equal(wrong.ok, false);

    // A wrong try does not burn the password (QEMU only counts successes).
    const login = await nativeLogin(firstPort, ca, issued.password);
    assert.equal(login.ok, true, JSON.stringify(login));
    if (login.ok) {
      assert.ok(login.width >= 320 && login.height >= 200, `a real screen: ${login.width}x${login.height}`);
      assert.equal(login.update, 0, "a FramebufferUpdate");
    }
  });

  step("a password is good for one login: used once, it stops opening the screen within a second; the next one does", async () => {
    const ca = await agent.client.vncCaCertificate();
    const first = await agent.client.nativeVncPassword(spec.id);
    assert.equal((await nativeLogin(firstPort, ca, first.password)).ok, true);
    // The agent ends it when QEMU reports the login (VNC_INITIALIZED); QEMU has no one-use password of its own.
    await waitFor("the used password to be refused", async () => !(await nativeLogin(firstPort, ca, first.password)).ok, 1000, 50);

    const second = await agent.client.nativeVncPassword(spec.id);
    assert.notEqual(second.password, first.password);
    const third = await agent.client.nativeVncPassword(spec.id);
    assert.equal((await nativeLogin(firstPort, ca, second.password)).ok, false, "a newer password replaces an unused one");
    assert.equal((await nativeLogin(firstPort, ca, third.password)).ok, true);
  });

  step("the server certificate is refused without the CA, and for a name it does not carry", async () => {
    const issued = await agent.client.nativeVncPassword(spec.id);
    await assert.rejects(nativeLogin(firstPort, null, issued.password), /self[- ]signed|unable to verify|UNABLE_TO_GET_ISSUER|SELF_SIGNED/i);
    const ca = await agent.client.vncCaCertificate();
    await assert.rejects(nativeLogin(firstPort, ca, issued.password, "elsewhere.example"), /elsewhere\.example|altnames/i);
  });

  step("the browser console's password and the native viewer's are separate", async () => {
    const ca = await agent.client.vncCaCertificate();
    const native = await agent.client.nativeVncPassword(spec.id);
    const browser = await agent.client.openVnc(spec.id);
    assert.notEqual(browser.password, native.password);
    // The unix display (noVNC's, through the agent) opens with its own password…
    const rx = collect(browser.stream);
    assert.deepEqual(await rfbSecurityTypes(browser.stream, rx), [2]);
    browser.stream.write(Buffer.from([2]));
    await rx.until(16);
    browser.stream.write(vncResponse(browser.password, rx.take(16)));
    await rx.until(4);
    assert.equal(rx.take(4).readUInt32BE(0), 0, "the browser's password opens the unix display");
    browser.stream.destroy();
    // …and that password does not open the TLS display, whose own password still does.
    assert.equal((await nativeLogin(firstPort, ca, browser.password)).ok, false);
    assert.equal((await nativeLogin(firstPort, ca, native.password)).ok, true);
  });

  step("each guest takes a port of its own; when the range is used up a start is refused clearly; a stopped guest's port is free again", async () => {
    const b = filler("guesttls00002");
    const c = filler("guesttls00003");
    const statusB = await agent.client.start(b);
    assert.deepEqual(statusB.vncTls, { host: LOOPBACK, port: firstPort + 1 });
    await assert.rejects(agent.client.start(c), conflict(new RegExp(`ports ${firstPort}–${firstPort + 1}.*GUESTHOUSE_VNC_TLS_PORTS`)));
    assert.equal((await agent.client.guest(c.id)).state, "stopped", "the refused guest did not start");

    await agent.client.forceOff(b.id);
    await waitFor("B's port to close", () => portFree(firstPort + 1), 10_000);
    const statusC = await agent.client.start(c);
    assert.deepEqual(statusC.vncTls, { host: LOOPBACK, port: firstPort + 1 }, "C gets the port B gave back");
    await agent.client.forceOff(c.id);
    assert.equal((await agent.client.guest(c.id)).vncTls, undefined, "a stopped guest has no endpoint");
  });

  step("after an agent restart the guest keeps its port, the certificates stay, and passwords still work", async () => {
    const caBefore = fs.readFileSync(tlsFiles(tlsDir()).caCert, "utf8");
    const certBefore = fs.readFileSync(tlsFiles(tlsDir()).serverCert, "utf8");
    await agent.kill();
    await agent.restart();
    assert.deepEqual((await agent.client.guest(spec.id)).vncTls, { host: LOOPBACK, port: firstPort });
    assert.equal(fs.readFileSync(tlsFiles(tlsDir()).caCert, "utf8"), caBefore);
    assert.equal(fs.readFileSync(tlsFiles(tlsDir()).serverCert, "utf8"), certBefore);
    const ca = await agent.client.vncCaCertificate();
    const issued = await agent.client.nativeVncPassword(spec.id);
    assert.equal((await nativeLogin(firstPort, ca, issued.password)).ok, true);
    // A new guest does not take the adopted guest's port.
    const d = filler("guesttls00004");
    assert.equal((await agent.client.start(d)).vncTls?.port, firstPort + 1);
    await agent.client.forceOff(d.id);
  });

  step("a guest that is not running gets no password", async () => {
    await assert.rejects(agent.client.nativeVncPassword("guesttls00009"), conflict(/not running/));
  });
});

describe("TLS VNC off (the default)", () => {
  let agent: TestAgent;
  const spec = testSpec("guestnotls001", { name: "no-tls" });

  before(async () => {
    agent = await startTestAgent();
    await agent.client.start(spec);
  });
  after(async () => {
    await agent?.cleanup();
  });

  test("QEMU opens no TCP port, its argv has no tls-creds, the status no endpoint", async () => {
    const status = await agent.client.guest(spec.id);
    assert.equal(status.state === "running" || status.state === "paused", true);
    assert.equal(status.vncTls, undefined);
    assert.ok(!status.argv!.some((a) => a.includes("tls-creds")), "no tls-creds");
    assert.deepEqual(status.argv!.filter((a, i) => status.argv![i - 1] === "-vnc").length, 1, "one display: the unix socket");
    assert.deepEqual(listeningPortsOf(status.pid!), [], "no TCP listener at all");
    assert.ok(!fs.existsSync(path.join(agent.dataDir, "tls")), "no certificates made");
  });

  test("no native viewer password and no CA", async () => {
    await assert.rejects(agent.client.nativeVncPassword(spec.id), conflict(/GUESTHOUSE_VNC_TLS=on/));
    await assert.rejects(agent.client.vncCaCertificate(), (err: GuesthouseError) => err.code === "not-found" && /GUESTHOUSE_VNC_TLS=on/.test(err.message));
  });
});
