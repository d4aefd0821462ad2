/**
 * A bounded load run against `deno task start` in its own process, on
 * loopback: single events and batches of 100. Prints requests/s and events/s.
 *
 * Run: `deno task load`
 *
 * @module
 */

import { runLoad } from "./_load.ts";

const dataDir = await Deno.makeTempDir();
const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", "src/deno/serve.ts"],
  env: { PORT: "0", EVENT_TRACKING_DATA_DIR: dataDir, EVENT_TRACKING_TOKEN: "load-token", NO_COLOR: "1" },
  stdout: "null",
  stderr: "piped",
}).spawn();
const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
let banner = "";
while (!/listening on (\S+)/.test(banner)) {
  const { value, done } = await reader.read();
  if (done) throw new Error(`the collector exited: ${banner}`);
  banner += value;
}
const url = /listening on (\S+)/.exec(banner)![1].replace("0.0.0.0", "127.0.0.1");

const runs = [
  { label: "single events", requests: 20_000, concurrency: 32, batchSize: 1 },
  { label: "batches of 100", requests: 2_000, concurrency: 16, batchSize: 100 },
];
console.log("| load (loopback, collector in its own process) | requests | 2xx | 503 retried | requests/s | events/s |");
console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
for (const run of runs) {
  await runLoad(url, "load-token", { ...run, requests: Math.ceil(run.requests / 10) }); // warm-up
  const result = await runLoad(url, "load-token", run);
  const ok = result.statuses[202] ?? 0;
  console.log(
    `| ${run.label} | ${result.requests} | ${ok} | ${result.retried} | ${Math.round(result.requestsPerSecond)} | ${
      Math.round(result.eventsPerSecond)
    } |`,
  );
}
child.kill("SIGTERM");
await child.status;
await reader.cancel();
const count = async (path: string) => {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter(Boolean).length;
  } catch {
    return 0;
  }
};
console.log(
  `events accepted in all runs (warm-ups included) written by SIGTERM: ${await count(`${dataDir}/events.jsonl`)}; ` +
    `dead-lettered: ${await count(`${dataDir}/dead-letters/tracking_logs.jsonl`)}`,
);
await Deno.remove(dataDir, { recursive: true });
