#!/usr/bin/env node
/**
 * The `guesthouse` command (npm bin): runs the CLI (cli/main.ts) as one bundled file, which
 * starts fast. The bundle is made by esbuild when it is missing or older than the CLI's
 * sources, written aside and renamed into place, so two first runs at once do not clash.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const sources = path.join(root, "cli");
const bundle = path.join(root, ".cache", "cli", "guesthouse.mjs");

const newest = Math.max(...fs.readdirSync(sources).map((f) => fs.statSync(path.join(sources, f)).mtimeMs));
const built = fs.existsSync(bundle) ? fs.statSync(bundle).mtimeMs : 0;
if (built < newest) {
  const esbuild = await import("esbuild");
  const result = await esbuild.build({
    entryPoints: [path.join(sources, "main.ts")],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    write: false,
    logLevel: "error",
    // ws loads these native helpers if they are there; it works without them.
    external: ["bufferutil", "utf-8-validate"],
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  });
  fs.mkdirSync(path.dirname(bundle), { recursive: true });
  const temp = `${bundle}.${process.pid}.tmp`;
  fs.writeFileSync(temp, result.outputFiles[0].contents);
  fs.renameSync(temp, bundle);
}
await import(pathToFileURL(bundle).href);
