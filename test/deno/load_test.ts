import assert from "node:assert/strict";
import type { AsyncRoutingBackend, InMemoryBackend } from "../../mod.ts";
import { startCollector } from "../../src/deno/mod.ts";
import { runLoad } from "../../bench/_load.ts";

// Correctness under load only: every valid request is answered 2xx and no
// event is lost. Rates are measured by bench/collector_load.ts, never asserted.
Deno.test("Deno server under bounded load: every valid request gets 202 and every event reaches the sink", async () => {
  const collector = await startCollector({
    port: 0,
    hostname: "127.0.0.1",
    token: "load",
    config: {
      backends: {
        queued: { ENGINE: "async_routing", OPTIONS: { backends: { sink: { ENGINE: "memory" } } } },
      },
    },
  });
  const single = await runLoad(collector.url, "load", { requests: 1_000, concurrency: 16, batchSize: 1 });
  const batches = await runLoad(collector.url, "load", { requests: 100, concurrency: 8, batchSize: 100 });
  await collector.shutdown();
  assert.deepEqual(single.statuses, { 202: 1_000 });
  assert.deepEqual(batches.statuses, { 202: 100 });
  const queued = collector.tracker.getBackend("queued") as AsyncRoutingBackend;
  const sink = queued.backends.get("sink") as InMemoryBackend;
  assert.equal(sink.events.length, 11_000);
  assert.equal(new Set(sink.events.map((e) => e.id)).size, 11_000);
});
