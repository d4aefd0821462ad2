/**
 * The routes the console uses, on the shared app: the metrics as JSON, bus
 * tickets, and the dead-letter routes over a store (the store is a double:
 * the runtimes' stores have tests of their own).
 */

import assert from "node:assert/strict";
import { SignJWT } from "jose";
import { InMemoryBackend, Tracker } from "../../mod.ts";
import {
  busTickets,
  createCollectorApp,
  type DeadLetterStore,
  httpError,
  offeredTicket,
  offersBusProtocol,
} from "../../src/http/mod.ts";
import { RecordingLogger } from "../_helpers.ts";

const auth = { authorization: "Bearer secret" };

function app(options: Partial<Parameters<typeof createCollectorApp>[0]> = {}) {
  const tracker = new Tracker({ backends: { sink: new InMemoryBackend() } });
  return { tracker, app: createCollectorApp({ tracker, token: "secret", logger: new RecordingLogger(), ...options }) };
}

Deno.test("GET /v1/metrics.json and GET /v1/metrics with Accept: application/json answer the counters as JSON", async () => {
  const { tracker, app: collector } = app();
  tracker.emit("a");
  tracker.emit("b");
  for (
    const [path, headers] of [["/v1/metrics.json", auth], ["/v1/metrics", { ...auth, accept: "application/json" }]]
  ) {
    const response = await collector.request(path as string, { headers: headers as HeadersInit });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type")!, /^application\/json/);
    const body = await response.json();
    assert.deepEqual(Object.keys(body), ["at", "backends", "clientDisconnects"]);
    assert.ok(!Number.isNaN(Date.parse(body.at)));
    assert.deepEqual(Object.keys(body.backends), ["root", "root/sink"]);
    assert.equal(body.backends["root/sink"].received, 2);
    assert.equal(body.backends["root/sink"].delivered, 2);
    assert.equal(body.clientDisconnects, 0);
  }
  // Prometheus scrapers keep the text format.
  const text = await collector.request("/v1/metrics", {
    headers: { ...auth, accept: "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5" },
  });
  assert.match(await text.text(), /event_tracking_received_total\{backend="root\/sink"\} 2/);
  const refused = await collector.request("/v1/metrics.json");
  assert.equal(refused.status, 401);
  await tracker.close();
});

Deno.test("CollectorOptions.metrics replaces the counters the metrics routes serve", async () => {
  const { tracker, app: collector } = app({
    metrics: () => ({ "root/x": { ...new Tracker().metrics().root, received: 7 } }),
  });
  const body = await (await collector.request("/v1/metrics.json", { headers: auth })).json();
  assert.equal(body.backends["root/x"].received, 7);
  await tracker.close();
});

Deno.test("POST /v1/bus/tickets issues a ticket that opens /v1/bus/subscribe as a subprotocol, without the token", async () => {
  const subscribed: string[] = [];
  const { tracker, app: collector } = app({
    token: { console: "t-console", lms: "t-lms" },
    busSubscribe: (c) => {
      subscribed.push(c.get("client" as never));
      return new Response("subscribed");
    },
  });
  assert.equal((await collector.request("/v1/bus/tickets", { method: "POST" })).status, 401);
  const issued = await collector.request("/v1/bus/tickets", {
    method: "POST",
    headers: { authorization: "Bearer t-console" },
  });
  assert.equal(issued.status, 200);
  const { ticket, protocol, expiresIn } = await issued.json();
  assert.equal(protocol, "event-tracking");
  assert.equal(expiresIn, 30);
  assert.match(ticket, /^[\w-]+\.[\w-]+\.[\w-]+$/, "a compact JWT: only characters a subprotocol may hold");

  const opened = await collector.request("/v1/bus/subscribe?pattern=.*", {
    headers: { upgrade: "websocket", "sec-websocket-protocol": `event-tracking, ticket.${ticket}` },
  });
  assert.equal(await opened.text(), "subscribed");
  assert.deepEqual(subscribed, ["console"], "the ticket's client, as if it had sent its token");

  // A ticket signed for another client's key, a tampered one, and none at all are refused before the bus is asked.
  const tampered = ticket.slice(0, -2) + (ticket.endsWith("AA") ? "BB" : "AA");
  for (const offered of [`ticket.${tampered}`, "ticket.not-a-jwt", "event-tracking"]) {
    const refused = await collector.request("/v1/bus/subscribe?pattern=.*", {
      headers: { upgrade: "websocket", "sec-websocket-protocol": offered },
    });
    assert.equal(refused.status, 401, offered);
    assert.equal((await refused.json()).error, "unauthorized");
  }
  assert.equal(subscribed.length, 1);
  // The bearer header still works for clients that can send it.
  const bearer = await collector.request("/v1/bus/subscribe?pattern=.*", {
    headers: { authorization: "Bearer t-lms" },
  });
  assert.equal(await bearer.text(), "subscribed");
  assert.deepEqual(subscribed, ["console", "lms"]);
  await tracker.close();
});

Deno.test("bus tickets expire, belong to one client's token and are for the bus only", async () => {
  const tickets = busTickets({ console: "t-console" });
  // The key is SHA-256 of the audience and the token: a ticket made with it, but expired, is refused.
  const key = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode("event-tracking:bus\nt-console")),
  );
  const now = Math.floor(Date.now() / 1000);
  const sign = (claims: { aud?: string; exp?: number }) => {
    const jwt = new SignJWT({}).setProtectedHeader({ alg: "HS256", kid: "console" }).setIssuedAt(now - 60);
    if (claims.aud !== undefined) jwt.setAudience(claims.aud);
    if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp);
    return jwt.sign(key);
  };
  assert.equal(await tickets.verify(await sign({ aud: "event-tracking:bus", exp: now + 30 })), "console");
  assert.equal(await tickets.verify(await sign({ aud: "event-tracking:bus", exp: now - 1 })), undefined, "expired");
  assert.equal(await tickets.verify(await sign({ aud: "elsewhere", exp: now + 30 })), undefined, "another audience");
  assert.equal(await tickets.verify(await sign({ aud: "event-tracking:bus" })), undefined, "no expiry");
  assert.equal(await busTickets({ console: "t-other" }).verify(await tickets.issue("console")), undefined);
  await assert.rejects(tickets.issue("nobody"), /no client is named "nobody"/);
  assert.equal(offeredTicket("event-tracking,ticket.a.b.c"), "a.b.c");
  assert.equal(offersBusProtocol("chat, event-tracking"), true);
  assert.equal(offersBusProtocol("event-tracking-v2"), false);
});

Deno.test("POST /v1/bus/tickets answers 404 on a collector without a bus", async () => {
  const { tracker, app: collector } = app();
  const response = await collector.request("/v1/bus/tickets", { method: "POST", headers: auth });
  assert.equal(response.status, 404);
  assert.equal((await response.json()).error, "bus_unavailable");
  await tracker.close();
});

Deno.test("GET /v1/dead-letters lists the store's branches; POST …/replay reports the replay; both need the token", async () => {
  const asked: unknown[] = [];
  const store: DeadLetterStore = {
    list(newest) {
      asked.push(newest);
      return Promise.resolve([{ backendName: "caliper", path: "root/caliper", count: 3, newest: [] }]);
    },
    replay(backendName) {
      if (backendName !== "caliper") throw httpError(404, "unknown_branch", `No async branch named "${backendName}"`);
      return Promise.resolve({ backendName, replayed: 3, delivered: 2, deadLettered: 1, failed: 0, pending: 0 });
    },
  };
  const { tracker, app: collector } = app({ deadLetters: store });
  const listed = await collector.request("/v1/dead-letters?newest=2", { headers: auth });
  assert.deepEqual(await listed.json(), {
    branches: [{ backendName: "caliper", path: "root/caliper", count: 3, newest: [] }],
  });
  await collector.request("/v1/dead-letters", { headers: auth });
  assert.deepEqual(asked, [2, 5], "five newest by default");
  for (const newest of ["-1", "51", "x", "1.5"]) {
    const bad = await collector.request(`/v1/dead-letters?newest=${newest}`, { headers: auth });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).message, /'newest' must be an integer from 0 to 50/);
  }
  const replayed = await collector.request("/v1/dead-letters/caliper/replay", { method: "POST", headers: auth });
  assert.deepEqual(await replayed.json(), {
    backendName: "caliper",
    replayed: 3,
    delivered: 2,
    deadLettered: 1,
    failed: 0,
    pending: 0,
  });
  const unknown = await collector.request("/v1/dead-letters/nope/replay", { method: "POST", headers: auth });
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error, "unknown_branch");
  assert.equal((await collector.request("/v1/dead-letters")).status, 401);
  assert.equal((await collector.request("/v1/dead-letters/caliper/replay", { method: "POST" })).status, 401);
  await tracker.close();
});

Deno.test("the dead-letter routes answer 404 dead_letters_unavailable without a store", async () => {
  const { tracker, app: collector } = app();
  const response = await collector.request("/v1/dead-letters", { headers: auth });
  assert.equal(response.status, 404);
  assert.equal((await response.json()).error, "dead_letters_unavailable");
  await tracker.close();
});

Deno.test("GET /console serves the page, its script and styles without credentials, under a strict CSP; console: false turns it off", async () => {
  const { tracker, app: collector } = app();
  const page = await collector.request("/console");
  assert.equal(page.status, 200);
  const csp = page.headers.get("content-security-policy")!;
  for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
    assert.ok(csp.includes(directive), `${directive} in ${csp}`);
  }
  const html = await page.text();
  for (const asset of ["/console/console.js", "/console/console.css"]) {
    assert.ok(html.includes(asset));
    const response = await collector.request(asset);
    assert.equal(response.status, 200, asset);
    await response.body?.cancel();
  }
  assert.doesNotMatch(html, /https?:\/\//, "nothing from another host");
  // The console's headers stay on its own paths.
  assert.equal((await collector.request("/v1/health")).headers.get("content-security-policy"), null);
  const { tracker: other, app: without } = app({ console: false });
  assert.equal((await without.request("/console")).status, 404);
  await Promise.all([tracker.close(), other.close()]);
});
