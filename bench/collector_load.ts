/**
 * The collector against a bare Hono server, over loopback, side by side in
 * one run, each in a process of its own and the load generator (npm
 * `autocannon`, bench/collector_loadgen.ts) in a third:
 *
 * - the baseline: bench/collector_bare.ts, a Hono app on `Deno.serve` that
 *   parses the JSON body and answers 202;
 * - the collector: `deno task start`'s server (src/deno/serve.ts) on its
 *   embedded defaults (write-ahead log with `fsync` `interval`, an async
 *   branch writing `events.jsonl`, the in-process bus) with a token.
 *
 * Each load (single events, batches of 100) runs against both, for
 * `--rounds` rounds, alternating; between runs the collector's queues are
 * left to drain. Prints requests/s, events/s, p50/p99 latency, non-2xx
 * answers and the ratio to the bare server per run, then the medians; at the
 * end, the collector is stopped with SIGTERM and every event it accepted is
 * counted in `events.jsonl`.
 *
 * Run: `deno task load [--rounds 3] [--duration 6] [--warmup 2] [--compare <another checkout>]…`
 *
 * @module
 */

import { parseArgs } from "node:util";
import type { LoadgenOptions, LoadgenResult } from "./collector_loadgen.ts";

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    duration: { type: "string", default: "6" },
    warmup: { type: "string", default: "2" },
    single: { type: "string", default: "32" },
    batch: { type: "string", default: "16" },
    // Another checkout's collector, run beside this one's (a before/after in one run).
    compare: { type: "string", multiple: true },
    // How long to wait, before each run, for the machine to be idle (other processes share its CPUs).
    "quiet-wait": { type: "string", default: "30" },
  },
});
const rounds = Number(flags.rounds);
const durationS = Number(flags.duration);
const warmupS = Number(flags.warmup);

const root = new URL("../", import.meta.url).pathname;
const TOKEN = "load-token";

interface Server {
  url: string;
  child: Deno.ChildProcess;
  stderr: () => string;
}

async function spawnServer(args: string[], env: Record<string, string>, cwd = root): Promise<Server> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { PORT: "0", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const listening = Promise.withResolvers<string>();
  (async () => {
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk, { stream: true });
      const match = /listening on (http:\/\/\S+)/.exec(text);
      if (match) listening.resolve(match[1].replace("0.0.0.0", "127.0.0.1"));
    }
    listening.reject(new Error(`${args.at(-1)} exited before listening:\n${text}`));
  })();
  return { url: await listening.promise, child, stderr: () => text };
}

// `deno task start`'s server, as the task runs it, on its embedded defaults with a token.
async function startCollector(cwd: string): Promise<Server & { dataDir: string }> {
  const dataDir = await Deno.makeTempDir({ prefix: "collector-load-" });
  const server = await spawnServer(
    ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", "src/deno/serve.ts"],
    { EVENT_TRACKING_DATA_DIR: dataDir, EVENT_TRACKING_TOKEN: TOKEN },
    cwd,
  );
  return { ...server, dataDir };
}

const bare = await spawnServer(["run", "--allow-net", "--allow-env", "bench/collector_bare.ts"], {});
const collectors: [string, Server & { dataDir: string }][] = [["collector", await startCollector(root)]];
for (const dir of flags.compare ?? []) collectors.push([`collector @ ${dir}`, await startCollector(dir)]);

const event = (i: number) => ({
  name: "edx.ui.lms.link_clicked",
  data: {
    course_id: "course-v1:edX+DemoX+Demo_Course",
    target_url: "https://courses.example.org/courses/course-v1:edX+DemoX+Demo_Course/courseware/1",
    i,
  },
});
const loads = [
  { label: "single events", events: 1, connections: Number(flags.single), body: JSON.stringify(event(0)) },
  {
    label: "batches of 100",
    events: 100,
    connections: Number(flags.batch),
    body: JSON.stringify({ events: Array.from({ length: 100 }, (_, i) => event(i)) }),
  },
];

// The share of CPU time idle over `ms`, from /proc/stat (Linux); undefined elsewhere.
async function idleShare(ms: number): Promise<number | undefined> {
  const sample = async () => {
    try {
      const fields = (await Deno.readTextFile("/proc/stat")).split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
      return { idle: fields[3] + fields[4], total: fields.reduce((a, b) => a + b, 0) };
    } catch {
      return undefined;
    }
  };
  const before = await sample();
  await new Promise((r) => setTimeout(r, ms));
  const after = await sample();
  if (before === undefined || after === undefined || after.total === before.total) return undefined;
  return (after.idle - before.idle) / (after.total - before.total);
}

// Waits until the machine has been idle for two seconds in a row (other work would skew the run), at most
// `--quiet-wait` seconds; false if it never was.
async function quiet(): Promise<boolean> {
  const deadline = Date.now() + Number(flags["quiet-wait"]) * 1000;
  let calm = 0;
  while (Date.now() < deadline) {
    const idle = await idleShare(1000);
    if (idle === undefined) return true;
    calm = idle >= 0.85 ? calm + 1 : 0;
    if (calm >= 2) return true;
  }
  return false;
}

async function generate(options: LoadgenOptions): Promise<LoadgenResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--config", "dev/deno.json", "bench/collector_loadgen.ts", JSON.stringify(options)],
    cwd: root,
    stdin: "null",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(output.stdout).trim();
  if (!output.success) throw new Error(`the load generator failed: ${text}`);
  return JSON.parse(text.split("\n").at(-1)!);
}

// Events a collector has accepted but not yet delivered, from its own metrics.
async function backlog(url: string): Promise<number> {
  const response = await fetch(`${url}/v1/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const text = await response.text();
  let depth = 0;
  for (const match of text.matchAll(/^event_tracking_queue_depth\{[^}]*\} (\d+)$/gm)) depth += Number(match[1]);
  return depth;
}

async function drained(url: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (await backlog(url) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 500));
}

interface Row {
  load: string;
  server: string;
  result: LoadgenResult;
}
const rows: Row[] = [];
const accepted = new Map<string, number>();

const ms = (value: number) => value < 10 ? value.toFixed(2) : value.toFixed(1);
const int = (value: number) => Math.round(value).toLocaleString("en-US");
const refused = (result: LoadgenResult) =>
  Object.entries(result.statuses).filter(([status]) => !status.startsWith("2")).reduce((sum, [, n]) => sum + n, 0);
const describeRefused = (result: LoadgenResult) =>
  Object.entries(result.statuses).filter(([status]) => !status.startsWith("2")).map(([s, n]) => `${n}×${s}`)
    .join(" ") || "0";
const load1 = () => Deno.loadavg().map((l) => l.toFixed(2)).join(" ");

console.log(
  `Loopback, ${warmupS} s warm-up + ${durationS} s per run, ${rounds} round(s); single events over ` +
    `${flags.single} connections, batches of 100 over ${flags.batch}; ${navigator.hardwareConcurrency} CPUs, ` +
    `load average ${load1()} at the start\n`,
);
console.log("| round | load | server | requests/s | events/s | p50 ms | p99 ms | non-2xx | errors | ratio |");
console.log("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
const servers: [string, Server, Record<string, string>][] = [
  ["bare Hono", bare, { "content-type": "application/json" }],
  ...collectors.map(([label, server]) =>
    [label, server, { "content-type": "application/json", authorization: `Bearer ${TOKEN}` }] as [
      string,
      Server,
      Record<string, string>,
    ]
  ),
];
for (let round = 1; round <= rounds; round++) {
  for (const load of loads) {
    let baseline = NaN;
    for (const [label, server, headers] of servers) {
      const calm = await quiet();
      const result = await generate({
        url: `${server.url}/v1/events`,
        body: load.body,
        headers,
        connections: load.connections,
        durationS,
        warmupS,
      });
      if (label === "bare Hono") baseline = result.requestsPerSecond;
      else {
        // Every 202 of a collector, warm-up included, is an accepted request.
        const ok = (result.statuses["202"] ?? 0) + (result.warmupStatuses?.["202"] ?? 0);
        accepted.set(label, (accepted.get(label) ?? 0) + ok * load.events);
        await drained(server.url);
      }
      rows.push({ load: load.label, server: label, result });
      console.log(
        `| ${round}${calm ? "" : " (busy)"} | ${load.label} | ${label} | ${int(result.requestsPerSecond)} | ${
          int(result.requestsPerSecond * load.events)
        } | ${ms(result.latencyMs.p50)} | ${ms(result.latencyMs.p99)} | ${describeRefused(result)} | ${
          result.errors + result.timeouts
        } | ${(result.requestsPerSecond / baseline).toFixed(2)}× |`,
      );
    }
  }
}

const median = (values: number[]) => {
  const sorted = values.toSorted((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
console.log(`\nMedians of ${rounds} round(s) (load average ${load1()} at the end):\n`);
console.log("| load | server | requests/s | events/s | p50 ms | p99 ms | non-2xx | ratio (target) |");
console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |");
for (const load of loads) {
  const of = (server: string) => rows.filter((row) => row.load === load.label && row.server === server);
  const bareRps = median(of("bare Hono").map((row) => row.result.requestsPerSecond));
  for (const [label] of servers) {
    const runs = of(label);
    const rps = median(runs.map((row) => row.result.requestsPerSecond));
    const target = load.events === 1 ? "≥ 0.5" : "≥ 0.4";
    console.log(
      `| ${load.label} | ${label} | ${int(rps)} | ${int(rps * load.events)} | ${
        ms(median(runs.map((row) => row.result.latencyMs.p50)))
      } | ${ms(median(runs.map((row) => row.result.latencyMs.p99)))} | ${
        runs.reduce((sum, row) => sum + refused(row.result), 0)
      } | ${label === "bare Hono" ? "1.00×" : `**${(rps / bareRps).toFixed(2)}×** (${target})`} |`,
    );
  }
}

bare.child.kill("SIGTERM");
await bare.child.status;
// Lines of a file, counted by its newlines (the file may be larger than a string can be).
const count = async (path: string) => {
  let lines = 0;
  try {
    const file = await Deno.open(path);
    for await (const chunk of file.readable) {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return lines;
};
console.log();
for (const [label, collector] of collectors) {
  collector.child.kill("SIGTERM");
  const status = await collector.child.status;
  const written = await count(`${collector.dataDir}/events.jsonl`);
  const dead = await count(`${collector.dataDir}/dead-letters/tracking_logs.jsonl`);
  console.log(
    `${label} stopped by SIGTERM (exit ${status.code}): ${int(written)} event(s) in events.jsonl, ` +
      `${int(accepted.get(label) ?? 0)} answered 202 (requests in flight when a run ended add a few); ` +
      `dead-lettered: ${dead}`,
  );
  if (!status.success) console.log(collector.stderr());
  await Deno.remove(collector.dataDir, { recursive: true });
}
