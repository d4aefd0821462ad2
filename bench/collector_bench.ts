/**
 * The collector app's own cost per request, in-process (no sockets):
 * `POST /v1/events` with one event and with 100, beside `GET /v1/health`.
 *
 * Run: `deno task bench bench/collector_bench.ts`
 *
 * @module
 */

import { Tracker } from "../mod.ts";
import { createCollectorApp } from "../src/http/mod.ts";

const noop = { send() {} };
const tracker = new Tracker({ backends: { sink: noop } });
const app = createCollectorApp({ tracker, token: "bench" });
const headers = { authorization: "Bearer bench" };
const single = JSON.stringify({ name: "edx.ui.click", data: { page: "/courses/x/courseware", x: 1 } });
const batch = JSON.stringify({
  events: Array.from({ length: 100 }, (_, i) => ({ name: "edx.ui.click", data: { page: "/courses/x/courseware", i } })),
});

Deno.bench("GET /v1/health (routing and response only)", { group: "request", baseline: true }, async () => {
  await (await app.request("/v1/health")).body?.cancel();
});

Deno.bench("POST /v1/events, 1 event", { group: "request" }, async () => {
  await (await app.request("/v1/events", { method: "POST", headers, body: single })).body?.cancel();
});

Deno.bench("POST /v1/events, batch of 100 events", { group: "request" }, async () => {
  await (await app.request("/v1/events", { method: "POST", headers, body: batch })).body?.cancel();
});
