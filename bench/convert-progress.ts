/**
 * How often a conversion's progress reaches the page. The whole product runs (agent,
 * web server, SQLite); a logged-in "page" follows `/api/events` like the browser
 * does, while the agent converts a 2 GiB image of random data (nothing for qemu-img
 * to skip) to qcow2. The gaps between `event: task` messages are what a person's
 * progress bar sees. The reference is qemu-img's own `-p` output for the same
 * conversion, timed in the same run: it prints only at whole per cents.
 *
 * Target: an update at least once a second (the largest gap ≤ 1000 ms).
 *
 *   node --import tsx bench/convert-progress.ts        (needs a built app: next build)
 *   BENCH_GIB=4 node --import tsx bench/convert-progress.ts
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { AgentClient } from "../server/agent-client";
import { createSession, SESSION_COOKIE } from "../server/auth/sessions";
import { startTestStack } from "../tests/helpers/web";
import { machineLine, median, ms, percentile, verdict } from "./stats";

const GIB = Number(process.env.BENCH_GIB ?? 2);

/** Gaps between successive timestamps, and the first one from `start`. */
function gaps(start: number, times: number[]): number[] {
  return times.map((t, i) => t - (i === 0 ? start : times[i - 1]!));
}

async function main(): Promise<void> {
  const stack = await startTestStack();
  const cleanups: Array<() => void> = [];
  const stop = async () => {
    for (const c of cleanups.splice(0)) c();
    await stack.cleanup();
  };
  process.once("SIGINT", () => void stop().finally(() => process.exit(130)));
  try {
    const disks = path.join(stack.agent.dataDir, "disks");
    const source = path.join(disks, "source.raw");
    console.log(`convert-progress: writing ${GIB} GiB of random data …`);
    const fd = fs.openSync(source, "w");
    for (let i = 0; i < GIB * 16; i++) fs.writeSync(fd, randomBytes(64 * 2 ** 20));
    fs.closeSync(fd);

    // Reference: qemu-img -p, the same conversion, its progress lines timed as they arrive.
    const refStart = performance.now();
    const refTimes: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const child = spawn("qemu-img", ["convert", "-p", "-f", "raw", "-O", "qcow2", source, path.join(disks, "ref.qcow2")]);
      child.stdout.on("data", (chunk: Buffer) => {
        for (const _ of chunk.toString().matchAll(/\/100%\)/g)) refTimes.push(performance.now());
      });
      child.once("error", reject);
      child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`qemu-img exited ${code}`))));
    });
    const refTotal = performance.now() - refStart;
    fs.rmSync(path.join(disks, "ref.qcow2"));

    // Ours: log in, follow the page's event stream, start the conversion as the web does.
    const { db } = stack.database;
    const admin = await db.user.findFirstOrThrow({ where: { username: stack.admin.username } });
    const host = await db.host.findFirstOrThrow({ where: { name: "local" } });
    const { secret } = await createSession(db, admin.id);
    const events: Array<{ at: number; state: string; progress: number | null }> = [];
    const sse = http.get(`${stack.baseUrl}/api/events`, { headers: { cookie: `${SESSION_COOKIE}=${secret}` } });
    cleanups.push(() => sse.destroy());
    await new Promise<void>((resolve, reject) => {
      sse.once("response", (res) => {
        if (res.statusCode !== 200) return reject(new Error(`/api/events answered ${res.statusCode}`));
        let buffer = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffer += chunk;
          let end: number;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const message = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            if (!message.startsWith("event: task\n")) continue;
            const data = JSON.parse(message.slice(message.indexOf("data: ") + 6)) as { state: string; progress: number | null };
            events.push({ at: performance.now(), ...data });
          }
        });
        resolve();
      });
      sse.once("error", reject);
    });

    const agent = new AgentClient(`unix:${stack.agent.socketPath}`);
    // The agent's own stream too, to tell the agent's pace from the web's relay.
    const agentTimes: number[] = [];
    const agentStream = agent.events(() => {}, undefined, (t) => t.state === "running" && agentTimes.push(performance.now()));
    cleanups.push(() => agentStream.close());
    const start = performance.now();
    const task = await agent.convertImage({ pool: "default", file: "source.raw", format: "raw" }, { pool: "default", file: "out.qcow2" }, "qcow2");
    // The row a server action writes (server/web/tasks.ts recordTask): the page hears of recorded tasks only.
    await db.task.create({ data: { id: task.id, kind: task.kind, title: task.title, state: task.state, hostId: host.id, userId: admin.id } });
    while ((await agent.task(task.id)).state === "running") await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500)); // the last event's way to the page
    const total = performance.now() - start;
    const final = await agent.task(task.id);
    if (final.state !== "succeeded") throw new Error(`the conversion ${final.state}: ${final.message}`);

    const running = events.filter((e) => e.state === "running").map((e) => e.at);
    const ours = gaps(start, running);
    const theirs = gaps(refStart, refTimes);
    const agentGaps = gaps(start, agentTimes.filter((t) => t >= start));
    const maxGap = Math.max(...ours);
    console.log("");
    console.log(`| | duration | updates | median gap | p95 gap | largest gap |`);
    console.log(`| --- | --- | --- | --- | --- | --- |`);
    console.log(`| page (\`/api/events\`) during \`convert\` to qcow2 | ${ms(total)} | ${running.length} | ${ms(median(ours))} | ${ms(percentile(ours, 95))} | ${ms(maxGap)} |`);
    console.log(`| the agent's event stream, same conversion | ${ms(total)} | ${agentGaps.length} | ${ms(median(agentGaps))} | ${ms(percentile(agentGaps, 95))} | ${ms(Math.max(...agentGaps))} |`);
    console.log(`| reference: \`qemu-img convert -p\` lines | ${ms(refTotal)} | ${refTimes.length} | ${ms(median(theirs))} | ${ms(percentile(theirs, 95))} | ${ms(Math.max(...theirs))} |`);
    console.log("");
    console.log(`progress values seen: ${events.filter((e) => e.progress !== null).map((e) => Math.floor(e.progress! * 100)).join(" ")}`);
    if (process.env.BENCH_TRACE) {
      console.log(`agent events at: ${agentTimes.filter((t) => t >= start).map((t) => (t - start).toFixed(0)).join(" ")}`);
      console.log(`page events at:  ${running.map((t) => (t - start).toFixed(0)).join(" ")}`);
    }
    console.log(machineLine());
    console.log(`target: an update at least once a second: largest gap ${ms(maxGap)} → ${verdict(maxGap <= 1000)}`);
  } finally {
    await stop();
  }
}

main().catch((err) => {
  console.error("convert-progress:", err);
  process.exit(1);
});
