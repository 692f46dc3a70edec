/**
 * The certificates of the optional TLS VNC endpoint (GUESTHOUSE_VNC_TLS=on), for
 * native viewers (remote-viewer, TigerVNC) that connect to a guest's display over TCP.
 *
 * The agent makes them once, with Debian's `openssl` binary (argument arrays, no
 * shell), in `<data>/tls/` (0700, keys 0600):
 *
 *   ca-key.pem       the host's own certificate authority: its key never leaves the host
 *   ca-cert.pem      its self-signed certificate, which people download from the dashboard
 *   server-key.pem   the key QEMU's VNC server presents…
 *   server-cert.pem  …with this certificate, signed by the CA, naming the host (SANs)
 *
 * QEMU's x509 credentials folder (`-object tls-creds-x509,dir=…`) is a copy of the
 * three files it reads, ca-cert.pem, server-cert.pem and server-key.pem (its
 * crypto/tlscredsx509.h names them), in each guest's run folder, readable by that
 * guest's QEMU user only until it has started (qemuTlsCopy); QEMU never sees ca-key.pem.
 *
 * The CA is kept as long as it is valid, so viewers that trust it go on trusting the
 * host. The server certificate is issued again at agent start when the names it
 * should carry changed, when it expires within RENEW_BEFORE_DAYS, or when it is not
 * the CA's (a folder restored by hand). Guests already running keep the certificate
 * they loaded; both are signed by the same CA.
 *
 * QEMU checks the certificates when a guest starts (crypto/tlscredsx509.c): the CA
 * needs basicConstraints CA:TRUE (and keyCertSign if keyUsage is critical); the server
 * certificate must not be a CA, with an extendedKeyUsage needs serverAuth, and with a
 * *critical* keyUsage needs both digitalSignature and keyEncipherment. The keys are
 * ECDSA P-256 (made in milliseconds; GnuTLS, which QEMU, remote-viewer and TigerVNC
 * use, and OpenSSL take them), for which keyEncipherment means nothing: the server
 * certificate's keyUsage is digitalSignature, not marked critical, which QEMU accepts.
 */
import { execFile } from "node:child_process";
import { randomBytes, X509Certificate } from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { GuesthouseError } from "../domain/errors";
import { childEnv } from "./process";

const run = promisify(execFile);

export const OPENSSL_BINARY = "openssl";

/** The files of the TLS folder; the last three are QEMU's names, which it requires. */
export function tlsFiles(dir: string) {
  return {
    caKey: path.join(dir, "ca-key.pem"),
    caCert: path.join(dir, "ca-cert.pem"),
    serverKey: path.join(dir, "server-key.pem"),
    serverCert: path.join(dir, "server-cert.pem"),
  };
}

const CA_DAYS = 3650;
const SERVER_DAYS = 825;
/** A server certificate this close to its end is issued again at agent start. */
const RENEW_BEFORE_DAYS = 30;
const DAY_MS = 86_400_000;
const KEY_CURVE = "P-256";

/** A DNS name (labels of letters, digits and inner hyphens), as a certificate's SAN takes it. */
const DNS_NAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** A name a viewer may use for the host: a DNS name or an IP address, nothing else. */
export function isCertificateName(name: string): boolean {
  return net.isIP(name) !== 0 || DNS_NAME.test(name);
}

/** An address that means "every interface": no viewer connects to it by that name. */
export function isWildcardAddress(address: string): boolean {
  return address === "0.0.0.0" || address === "::";
}

/**
 * The names the server certificate carries: the host's name, the extra names given
 * (GUESTHOUSE_VNC_TLS_NAMES) and the listening address unless it is a wildcard.
 * Each once, in that order; names that are not DNS names or IPs are left out here
 * (the configuration refuses them with a message first).
 */
export function certificateNames(hostname: string, extra: readonly string[], address: string): string[] {
  const names = [hostname, ...extra, ...(isWildcardAddress(address) ? [] : [address])];
  const seen = new Set<string>();
  return names.filter((n) => {
    const key = n.toLowerCase();
    if (!isCertificateName(n) || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The names as openssl's subjectAltName section spells them (DNS.n / IP.n). */
export function altNameSection(names: readonly string[]): string {
  let dns = 0;
  let ip = 0;
  return names.map((n) => (net.isIP(n) ? `IP.${++ip} = ${n}` : `DNS.${++dns} = ${n}`)).join("\n");
}

/** The names a certificate carries, as Node reports them ("DNS:a, IP Address:1.2.3.4"), normalised. */
export function namesOf(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => s.replace(/^(DNS|IP Address):/, "").toLowerCase());
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  const norm = (list: readonly string[]) => [...new Set(list.map((n) => (net.isIPv6(n) ? expandIPv6(n) : n.toLowerCase())))].sort().join(",");
  return norm(a) === norm(b);
}

/** Node prints IPv6 SANs in full form; compare in that form. */
function expandIPv6(address: string): string {
  const [head, tail] = address.toLowerCase().split("::") as [string, string | undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const fill = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill("0");
  return [...left, ...fill, ...right].map((g) => g.replace(/^0+(?=.)/, "")).join(":");
}

async function readCert(file: string): Promise<X509Certificate | null> {
  try {
    return new X509Certificate(await fsp.readFile(file));
  } catch {
    return null;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file, fs.constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function stillValid(cert: X509Certificate, marginDays: number): boolean {
  const now = Date.now();
  return Date.parse(cert.validFrom) <= now && Date.parse(cert.validTo) - marginDays * DAY_MS > now;
}

/** Runs openssl with an argument array; a missing binary or a refusal says what to do. */
async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    // A minimal environment: no OPENSSL_CONF or the like from the agent's own changes what is made.
    const env = childEnv();
    await run(OPENSSL_BINARY, args, { cwd, timeout: 60_000, env });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") {
      throw new GuesthouseError(
        "internal",
        "GUESTHOUSE_VNC_TLS is on, but the openssl program is not installed on this host. Install Debian's openssl package (apt-get install openssl), or turn GUESTHOUSE_VNC_TLS off.",
      );
    }
    throw new GuesthouseError("internal", `openssl could not make the TLS VNC certificates: ${(e.stderr || e.message).trim().split("\n")[0]}`, `${OPENSSL_BINARY} ${args.join(" ")}\n${e.stderr ?? ""}`);
  }
}

/** A subject's common name: only characters that need no escaping in `-subj`. */
function commonName(text: string): string {
  return text.replace(/[^A-Za-z0-9 .()-]/g, "").slice(0, 60) || "guesthouse";
}

const serial = () => `0x${randomBytes(16).toString("hex").replace(/^[89a-f]/, "1")}`;

async function newKey(file: string, work: string): Promise<void> {
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", `ec_paramgen_curve:${KEY_CURVE}`, "-pkeyopt", "ec_param_enc:named_curve", "-out", file], work);
  await fsp.chmod(file, 0o600);
}

async function makeCa(files: ReturnType<typeof tlsFiles>, hostname: string, work: string): Promise<void> {
  const config = path.join(work, "ca.cnf");
  await fsp.writeFile(
    config,
    [
      "[req]",
      "distinguished_name = dn",
      "prompt = no",
      "x509_extensions = v3_ca",
      "[dn]",
      "CN = guesthouse",
      "[v3_ca]",
      "basicConstraints = critical, CA:TRUE, pathlen:0",
      "keyUsage = critical, keyCertSign, cRLSign",
      "subjectKeyIdentifier = hash",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const key = path.join(work, "ca-key.pem");
  const cert = path.join(work, "ca-cert.pem");
  await newKey(key, work);
  await openssl(
    ["req", "-x509", "-new", "-config", config, "-key", key, "-sha256", "-days", String(CA_DAYS), "-set_serial", serial(), "-subj", `/O=Guesthouse/CN=${commonName(`Guesthouse VNC CA (${hostname})`)}`, "-out", cert],
    work,
  );
  await fsp.chmod(cert, 0o644);
  // The key first: a CA certificate without its key would be replaced at the next start.
  await fsp.rename(key, files.caKey);
  await fsp.rename(cert, files.caCert);
}

async function makeServerCert(files: ReturnType<typeof tlsFiles>, names: readonly string[], work: string): Promise<void> {
  const config = path.join(work, "server.cnf");
  await fsp.writeFile(
    config,
    [
      "[req]",
      "distinguished_name = dn",
      "prompt = no",
      "[dn]",
      "CN = guesthouse",
      "[v3_server]",
      "basicConstraints = critical, CA:FALSE",
      "keyUsage = digitalSignature",
      "extendedKeyUsage = serverAuth",
      "subjectKeyIdentifier = hash",
      "authorityKeyIdentifier = keyid, issuer",
      "subjectAltName = @alt",
      "[alt]",
      altNameSection(names),
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const key = path.join(work, "server-key.pem");
  const csr = path.join(work, "server.csr");
  const cert = path.join(work, "server-cert.pem");
  await newKey(key, work);
  await openssl(["req", "-new", "-config", config, "-key", key, "-subj", `/O=Guesthouse/CN=${commonName(names[0] ?? "guesthouse")}`, "-out", csr], work);
  await openssl(
    ["x509", "-req", "-in", csr, "-CA", files.caCert, "-CAkey", files.caKey, "-set_serial", serial(), "-sha256", "-days", String(SERVER_DAYS), "-extfile", config, "-extensions", "v3_server", "-out", cert],
    work,
  );
  await fsp.chmod(cert, 0o644);
  await fsp.rename(key, files.serverKey);
  await fsp.rename(cert, files.serverCert);
}

export interface TlsSetup {
  /** What was done, for the agent's log. */
  made: Array<"ca" | "server">;
  names: string[];
}

/**
 * Makes sure `<dir>` holds a valid CA and a server certificate for `names`; makes
 * what is missing, stale or not the CA's. Resolves with what it made.
 */
export async function ensureVncTls(dir: string, names: readonly string[], hostname = os.hostname()): Promise<TlsSetup> {
  if (names.length === 0) throw new GuesthouseError("invalid-input", "The TLS VNC certificate needs at least one host name.");
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await fsp.chmod(dir, 0o700);
  const files = tlsFiles(dir);
  const made: TlsSetup["made"] = [];
  const work = await fsp.mkdtemp(path.join(dir, ".work-"));
  try {
    let ca = await readCert(files.caCert);
    if (!ca || !(await exists(files.caKey)) || !stillValid(ca, 0) || !ca.ca) {
      await makeCa(files, hostname, work);
      ca = (await readCert(files.caCert))!;
      made.push("ca");
    }
    const server = await readCert(files.serverCert);
    const fresh =
      server !== null &&
      made.length === 0 &&
      (await exists(files.serverKey)) &&
      server.checkIssued(ca) &&
      server.verify(ca.publicKey) &&
      stillValid(server, RENEW_BEFORE_DAYS) &&
      sameNames(namesOf(server), names);
    if (!fresh) {
      await makeServerCert(files, names, work);
      made.push("server");
    }
    for (const key of [files.caKey, files.serverKey]) await fsp.chmod(key, 0o600);
    return { made, names: [...names] };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/**
 * Copies the three files QEMU's TLS VNC server reads into `target` (a guest's run
 * folder's `tls`), owned by its QEMU's user: never the CA's key.
 */
export async function qemuTlsCopy(dir: string, target: string, owner: { uid: number; gid: number } | null): Promise<void> {
  const from = tlsFiles(dir);
  const to = tlsFiles(target);
  await fsp.mkdir(target, { mode: 0o700 });
  if (owner) await fsp.chown(target, owner.uid, owner.gid);
  for (const name of ["caCert", "serverCert", "serverKey"] as const) {
    await fsp.copyFile(from[name], to[name], fs.constants.COPYFILE_EXCL);
    await fsp.chmod(to[name], 0o600);
    if (owner) await fsp.chown(to[name], owner.uid, owner.gid);
  }
}

/** The CA certificate (public), as PEM text. */
export async function readCaCertificate(dir: string): Promise<string> {
  try {
    return await fsp.readFile(tlsFiles(dir).caCert, "utf8");
  } catch {
    throw new GuesthouseError("not-found", "This host has no TLS VNC certificate authority yet; restart its agent with GUESTHOUSE_VNC_TLS=on.");
  }
}
