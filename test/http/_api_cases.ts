/**
 * The collector's HTTP API cases, run against every way of serving it: the
 * app in-process, the Deno server over loopback, and the Worker in miniflare.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { TrackingEvent } from "../../mod.ts";
import type { CollectorLimits } from "../../src/http/mod.ts";

export const TOKEN = "s3cret-token";
export const auth = { authorization: `Bearer ${TOKEN}` };

/** A collector under test: serves `request`, shows what reached its sink. */
export interface Served {
  request(path: string, init?: RequestInit): Promise<Response>;
  events(): TrackingEvent[] | Promise<TrackingEvent[]>;
  /** The host the requests carry (for the request-scope assertions). */
  host: string;
  close(): Promise<void>;
}

/** Starts a collector with token {@linkcode TOKEN}, the given limits, and a sink it can show. */
export type Serve = (limits?: CollectorLimits) => Promise<Served>;

/** Registers every API case for one way of serving. */
export function runApiCases(label: string, serve: Serve): void {
  const test = (name: string, fn: (served: Served) => Promise<void>, limits?: CollectorLimits) =>
    Deno.test(`${label}: ${name}`, async () => {
      const served = await serve(limits);
      try {
        await fn(served);
      } finally {
        await served.close();
      }
    });
  const post = (served: Served, body: unknown, headers: Record<string, string> = auth) =>
    served.request("/v1/events", {
      method: "POST",
      headers,
      body: typeof body === "string" ? body : JSON.stringify(body),
    });

  test("POST /v1/events accepts one event and answers 202 with its id", async (served) => {
    const response = await post(served, { name: "edx.ui.click", data: { x: 1 } });
    assert.equal(response.status, 202);
    const body = await response.json();
    const events = await served.events();
    assert.equal(body.accepted, 1);
    assert.deepEqual(body.ids, [events[0].id]);
    assert.deepEqual(events[0].data, { x: 1 });
  });

  test("POST /v1/events emits inside a request scope: request id, ip, agent, host, path, referer, client", async (served) => {
    const response = await post(served, { name: "a" }, {
      ...auth,
      "x-request-id": "req-42",
      "user-agent": "tests/1.0",
      referer: "https://courses.example.org/x",
      "cf-connecting-ip": "203.0.113.9",
    });
    await response.body?.cancel();
    const { context } = (await served.events())[0];
    assert.equal(context.request_id, "req-42");
    assert.equal(context.agent, "tests/1.0");
    assert.equal(context.host, served.host);
    assert.equal(context.path, "/v1/events");
    assert.equal(context.referer, "https://courses.example.org/x");
    assert.equal(context.client, "default");
    assert.equal(typeof context.ip, "string");
  });

  test("POST /v1/events merges an event's own context under the request scope, which wins", async (served) => {
    const response = await post(served, { name: "a", context: { course_id: "c1", client: "spoofed", path: "/x" } });
    await response.body?.cancel();
    const { context } = (await served.events())[0];
    assert.equal(context.course_id, "c1");
    assert.equal(context.client, "default");
    assert.equal(context.path, "/v1/events");
  });

  test("POST /v1/events accepts a batch of 500 and emits every event in order", async (served) => {
    const events = Array.from({ length: 500 }, (_, i) => ({ name: `e.${i}`, data: { i } }));
    const response = await post(served, { events });
    assert.equal(response.status, 202);
    const body = await response.json();
    const received = await served.events();
    assert.equal(body.accepted, 500);
    assert.deepEqual(received.map((e) => e.name), events.map((e) => e.name));
    assert.deepEqual(body.ids, received.map((e) => e.id));
  });

  test("POST /v1/events refuses a batch with any bad event, naming each by index and field", async (served) => {
    const response = await post(served, {
      events: [
        { name: "good" },
        { name: "" },
        { name: "x".repeat(257) },
        { data: {} },
        { name: "a", context: [1] },
        "not an object",
        { name: "a", extra: true },
      ],
    });
    assert.equal(response.status, 400);
    const body = await response.json();
    assert.equal(body.error, "invalid_events");
    assert.deepEqual(body.errors.map((e: { index: number; field: string }) => [e.index, e.field]), [
      [1, "name"],
      [2, "name"],
      [3, "name"],
      [4, "context"],
      [5, ""],
      [6, "extra"],
    ]);
    assert.match(body.errors[1].message, /at most 256 characters, got 257/);
    assert.equal((await served.events()).length, 0, "no event of the batch was accepted");
  });

  test("POST /v1/events answers 400 for malformed JSON, wrong shapes and over-full batches", async (served) => {
    const cases: [unknown, string][] = [
      ["{not json", "invalid_json"],
      ["", "invalid_json"],
      ["[1,2]", "invalid_body"],
      ['"text"', "invalid_body"],
      [{ events: {} }, "invalid_body"],
      [{ events: [] }, "invalid_body"],
      [{ events: [{ name: "a" }], name: "b" }, "invalid_body"],
      [{ events: [{ name: "a" }, { name: "b" }, { name: "c" }, { name: "d" }] }, "too_many_events"],
    ];
    for (const [body, code] of cases) {
      const response = await post(served, body);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.equal((await response.json()).error, code);
    }
  }, { maxBatchSize: 3 });

  test("POST /v1/events refuses events over the size limit and data nested too deep", async (served) => {
    let response = await post(served, { name: "a", data: { s: "x".repeat(200) } });
    assert.equal(response.status, 400);
    assert.match((await response.json()).errors[0].message, /bytes, over the limit of 100/);
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    response = await post(served, `{"name":"a","data":${JSON.stringify(deep)}}`);
    assert.equal(response.status, 400);
    assert.match((await response.json()).errors[0].message, /deeper than 32/);
  }, { maxEventBytes: 100 });

  test("POST /v1/events answers 413 for a body over the limit, with or without Content-Length", async (served) => {
    const big = JSON.stringify({ name: "a", data: "x".repeat(2000) });
    let response = await served.request("/v1/events", { method: "POST", headers: auth, body: big });
    assert.equal(response.status, 413);
    assert.equal((await response.json()).error, "payload_too_large");
    const stream = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(big));
        controller.close();
      },
    });
    response = await served.request("/v1/events", { method: "POST", headers: auth, body: stream });
    assert.equal(response.status, 413);
    await response.body?.cancel();
  }, { maxBodyBytes: 1000 });

  test("POST /v1/events takes the body as JSON whatever its Content-Type (sendBeacon's text/plain, curl -d)", async (served) => {
    for (const type of ["text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "application/json"]) {
      const response = await post(served, { name: "typed", data: { type } }, { ...auth, "content-type": type });
      assert.equal(response.status, 202, type);
      await response.body?.cancel();
    }
    assert.deepEqual((await served.events()).map((e) => (e.data as { type: string }).type), [
      "text/plain;charset=UTF-8",
      "application/x-www-form-urlencoded",
      "application/json",
    ]);
  });

  test("POST /v1/events answers 400 for a body that is not UTF-8", async (served) => {
    const response = await served.request("/v1/events", {
      method: "POST",
      headers: auth,
      body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    });
    assert.equal(response.status, 400);
    assert.equal((await response.json()).error, "invalid_encoding");
  });

  test("the collector answers 401 with WWW-Authenticate: Bearer without the right bearer token, and 404 JSON for unknown routes", async (served) => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: "Basic abc" },
      { authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const response = await post(served, { name: "a" }, headers);
      assert.equal(response.status, 401);
      assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer /, "a 401 names the Bearer scheme");
      assert.equal((await response.json()).error, "unauthorized");
    }
    assert.equal((await served.events()).length, 0);
    const metrics = await served.request("/v1/metrics");
    assert.equal(metrics.status, 401);
    await metrics.body?.cancel();
    const missing = await served.request("/v1/nothing");
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error, "not_found");
  });

  test("GET /v1/health needs no credentials; GET /v1/metrics renders Prometheus text", async (served) => {
    const health = await served.request("/v1/health");
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: "ok" });
    await (await post(served, { name: "a" })).body?.cancel();
    await served.events();
    const metrics = await served.request("/v1/metrics", { headers: auth });
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    assert.match(await metrics.text(), /event_tracking_received_total\{backend="root"\} 1/);
  });
}
