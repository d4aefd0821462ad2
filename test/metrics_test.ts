import assert from "node:assert/strict";
import { emptyMetrics, InMemoryBackend, RoutingBackend, toPrometheus, Tracker } from "../mod.ts";
import { RecordingLogger } from "./_helpers.ts";

Deno.test("Tracker.metrics() counts per backend path", () => {
  const logger = new RecordingLogger();
  const tracker = new Tracker({
    logger,
    backends: {
      all: new InMemoryBackend(),
      filtered: new RoutingBackend({
        logger,
        backends: { sink: new InMemoryBackend() },
        processors: [(event) =>
          event.name === "keep" ? undefined : (() => {
            throw new Error("x");
          })()],
      }),
      broken: {
        send() {
          throw new Error("down");
        },
      },
    },
  });
  tracker.emit("keep");
  tracker.emit("other");
  const metrics = tracker.metrics();
  assert.deepEqual(Object.keys(metrics).sort(), [
    "root",
    "root/all",
    "root/broken",
    "root/filtered",
    "root/filtered/sink",
  ]);
  assert.equal(metrics.root.received, 2);
  assert.equal(metrics.root.passed, 2);
  assert.equal(metrics["root/all"].delivered, 2);
  assert.equal(metrics["root/broken"].failed, 2);
  assert.equal(metrics["root/filtered"].processorErrors, 1);
  assert.equal(metrics["root/filtered/sink"].delivered, 2);
});

Deno.test("toPrometheus() renders every counter family with HELP, TYPE and escaped labels", () => {
  const text = toPrometheus({ 'root/a"b': { ...emptyMetrics(), received: 3, queueDepth: 1 } });
  assert.match(text, /^# HELP event_tracking_received_total /m);
  assert.match(text, /^# TYPE event_tracking_received_total counter$/m);
  assert.match(text, /^event_tracking_received_total\{backend="root\/a\\"b"\} 3$/m);
  assert.match(text, /^# TYPE event_tracking_queue_depth gauge$/m);
  assert.match(text, /^event_tracking_processor_errors_total\{backend="root\/a\\"b"\} 0$/m);
  assert.ok(text.endsWith("\n"));
});
