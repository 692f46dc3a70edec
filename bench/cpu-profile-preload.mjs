// Preloaded with NODE_OPTIONS="--import <this file>" by bench/guest-list.ts (BENCH_PROFILE=<dir>):
// profiles the web server process (node rejects --cpu-prof in NODE_OPTIONS) and writes
// <dir>/web-<pid>.cpuprofile when it exits. Other node processes are left alone.
import fs from "node:fs";
import inspector from "node:inspector";
import path from "node:path";

const dir = process.env.BENCH_PROFILE_DIR;
if (dir && process.argv.some((a) => a.endsWith("server/web/main.ts"))) {
  const session = new inspector.Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 500 });
  session.post("Profiler.start");
  process.on("exit", () => {
    // A same-thread session answers synchronously, so this works inside "exit".
    session.post("Profiler.stop", (err, result) => {
      if (!err) fs.writeFileSync(path.join(dir, `web-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}
