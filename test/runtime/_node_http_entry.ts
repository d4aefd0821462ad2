/**
 * What test/runtime/node_http_test.ts runs under Node.js, bundled: the
 * collector app of `@edx/event-tracking/http` answering a request through its
 * `fetch`, as any Node.js server adapter would call it, and the
 * request-scope middleware in an app of the user's own.
 *
 * @module
 */

import { Hono } from "hono";
import { InMemoryBackend, Tracker } from "../../mod.ts";
import { createCollectorApp, trackingContext } from "../../src/http/mod.ts";

const sink = new InMemoryBackend();
const tracker = new Tracker({ backends: { sink } });
const app = createCollectorApp({ tracker, token: "node-token" });
const accepted = await app.fetch(
  new Request("http://collector.test/v1/events", {
    method: "POST",
    headers: { authorization: "Bearer node-token", "content-type": "application/json" },
    body: JSON.stringify({ name: "edx.ui.click", data: { x: 1 } }),
  }),
);
const refused = await app.fetch(new Request("http://collector.test/v1/events", { method: "POST", body: "{}" }));

const own = new Hono().use(trackingContext({ tracker })).get("/courses", (c) => {
  tracker.emit("edx.course.list.viewed");
  return c.text("ok");
});
await own.fetch(new Request("http://lms.test/courses", { headers: { "x-request-id": "req-1" } }));
await tracker.close();

console.log(JSON.stringify({
  accepted: { status: accepted.status, body: await accepted.json() },
  refused: refused.status,
  events: sink.events.map((event) => [event.name, event.context.path, event.context.request_id ?? null]),
}));
