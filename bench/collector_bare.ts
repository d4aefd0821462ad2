/**
 * The baseline of `deno task load`: a bare Hono server that parses the JSON
 * body of `POST /v1/events` and answers 202 with how many events it holds,
 * and nothing else (no auth, no validation, no tracker, no log). It runs in
 * its own process, on `Deno.serve` as the collector does, and prints
 * `listening on <url>` once it listens.
 *
 * Run: `deno run --allow-net bench/collector_bare.ts` (`PORT`, default 0: a free port)
 *
 * @module
 */

import { Hono } from "hono";

const app = new Hono();
app.post("/v1/events", async (c) => {
  const body = await c.req.json();
  const accepted = Array.isArray(body?.events) ? body.events.length : 1;
  return c.json({ accepted }, 202);
});

Deno.serve({
  port: Number(Deno.env.get("PORT") ?? "0"),
  hostname: "127.0.0.1",
  onListen: ({ hostname, port }) => console.error(`Bare Hono listening on http://${hostname}:${port}`),
}, app.fetch);
