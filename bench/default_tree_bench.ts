/**
 * The collector's default tree in process, branch by branch: runs of 2,000
 * events created and sent, then flushed to disk, through each branch of
 * `defaultCollectorConfig` alone and through the whole tree. The baseline of
 * the group is the same run into a tree whose only backend does nothing:
 * what creating and routing an event costs before any branch works.
 * Per event: the time of an iteration divided by 2,000.
 *
 * Run: `deno task bench bench/default_tree_bench.ts`
 *
 * @module
 */

import { createTracker, type Tracker, type TrackerConfig } from "../mod.ts";
import { defaultCollectorConfig } from "../src/deno/serve.ts";

const RUN = 2_000;
const dataDir = await Deno.makeTempDir({ prefix: "default-tree-bench-" });
const tree = defaultCollectorConfig(dataDir);

function trackerOf(backends: TrackerConfig["backends"]): Tracker {
  return createTracker({ backends }, { dataDir, engines: { "bench.noop": () => ({ send() {} }) } });
}

const data = { course_id: "course-v1:edX+DemoX+Demo_Course", target_url: "https://courses.example.org/x/y" };

async function run(tracker: Tracker): Promise<void> {
  const sends: (Promise<void> | undefined)[] = [];
  for (let i = 0; i < RUN; i++) sends.push(tracker.send(tracker.createEvent("edx.ui.lms.link_clicked", data)));
  await Promise.all(sends);
  await tracker.flush();
}

const noop = trackerOf({ noop: { ENGINE: "bench.noop" } });
Deno.bench("2,000 events into a backend that does nothing", { group: "tree", baseline: true }, async () => {
  await run(noop);
});
for (const name of Object.keys(tree.backends!)) {
  const tracker = trackerOf({ [name]: tree.backends![name] });
  Deno.bench(`2,000 events through the default tree's "${name}" branch alone`, { group: "tree" }, async () => {
    await run(tracker);
  });
}
const whole = trackerOf(tree.backends);
Deno.bench("2,000 events through the whole default tree", { group: "tree" }, async () => {
  await run(whole);
});

globalThis.addEventListener("unload", () => {
  Deno.removeSync(dataDir, { recursive: true });
});
