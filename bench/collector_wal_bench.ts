/**
 * What the write-ahead log costs the collector's 202: `POST /v1/events`
 * in-process, without the log and with each `EVENT_TRACKING_FSYNC` policy,
 * side by side in one run. The tree is a no-op sink, so the figures are the
 * request and the log alone (in-process there is no network to pace the
 * load, so a real sink would only measure its own overflow).
 *
 * Run: `deno task bench bench/collector_wal_bench.ts`
 *
 * @module
 */

import { Tracker } from "../mod.ts";
import { createCollectorApp } from "../src/http/mod.ts";
import { openWriteAheadIntake } from "../src/deno/_wal_intake.ts";
import type { FsyncPolicy } from "../src/deno/write_ahead_log.ts";

const headers = { authorization: "Bearer bench", "content-type": "application/json" };
const single = JSON.stringify({ name: "edx.ui.click", data: { page: "/courses/x/courseware", x: 1 } });
const batch = JSON.stringify({
  events: Array.from({ length: 100 }, (_, i) => ({ name: "edx.ui.click", data: { page: "/courses/x/courseware", i } })),
});
const logger = { warn() {}, error: console.error };

const variants: [string, FsyncPolicy | undefined][] = [
  ["no write-ahead log (202 once queued in memory)", undefined],
  ["write-ahead log, fsync off", "off"],
  ["write-ahead log, fsync interval (default)", "interval"],
  ["write-ahead log, fsync always", "always"],
];

const dirs: string[] = [];
const apps = await Promise.all(variants.map(async ([, fsync]) => {
  const dataDir = await Deno.makeTempDir({ prefix: "wal-bench-" });
  dirs.push(dataDir);
  const tracker = new Tracker({ backends: { sink: { send() {} } }, logger });
  const wal = fsync === undefined
    ? undefined
    : await openWriteAheadIntake(tracker, { dir: `${dataDir}/wal`, fsync, logger });
  return createCollectorApp({ tracker, token: "bench", intake: wal?.intake, logger });
}));

async function post(app: (typeof apps)[number], body: string): Promise<void> {
  const response = await app.request("/v1/events", { method: "POST", headers, body });
  if (response.status !== 202) throw new Error(`answered ${response.status}: ${await response.text()}`);
  await response.body?.cancel();
}

variants.forEach(([name], i) => {
  Deno.bench(`1 event: ${name}`, { group: "single event", baseline: i === 0 }, async () => await post(apps[i], single));
});
variants.forEach(([name], i) => {
  Deno.bench(
    `100 events: ${name}`,
    { group: "batch of 100", baseline: i === 0 },
    async () => await post(apps[i], batch),
  );
});

globalThis.addEventListener("unload", () => {
  for (const dir of dirs) Deno.removeSync(dir, { recursive: true });
});
