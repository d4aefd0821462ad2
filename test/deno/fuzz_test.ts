import assert from "node:assert/strict";
import type { InMemoryBackend } from "../../mod.ts";
import { startCollector } from "../../src/deno/mod.ts";
import { RecordingLogger, seeded } from "../_helpers.ts";

function fuzzBodies(count: number, random: () => number): (string | Uint8Array<ArrayBuffer>)[] {
  const pick = <T>(items: T[]): T => items[Math.floor(random() * items.length)];
  const value = (depth: number): unknown => {
    switch (Math.floor(random() * (depth > 3 ? 5 : 8))) {
      case 0:
        return null;
      case 1:
        return random() < 0.5;
      case 2:
        return pick([0, -1, 1e308, -0.5, 2 ** 53, 1e-300]);
      case 3:
        return pick(["", "a", "é", "\u0000", "\ud800", "😀", "x".repeat(300), "edx.course.enrollment.activated"]);
      case 4:
        return pick([[], {}, "__proto__", "constructor"]);
      case 5:
        return Array.from({ length: Math.floor(random() * 4) }, () => value(depth + 1));
      default:
        return Object.fromEntries(
          Array.from(
            { length: Math.floor(random() * 4) },
            () => [pick(["name", "data", "context", "events", "x", "__proto__"]), value(depth + 1)],
          ),
        );
    }
  };
  const valid = () => ({ name: pick(["a", "edx.ui.click", "x".repeat(256)]), data: value(0) });
  const bodies: (string | Uint8Array<ArrayBuffer>)[] = [];
  for (let i = 0; i < count; i++) {
    const kind = Math.floor(random() * 8);
    if (kind === 0) {
      bodies.push(Uint8Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256)));
    } else if (kind === 1) bodies.push(JSON.stringify(valid()).slice(0, Math.floor(random() * 20)));
    else if (kind === 2) bodies.push(JSON.stringify(value(0)) ?? "undefined");
    else if (kind === 3) {
      bodies.push(JSON.stringify({ events: Array.from({ length: Math.floor(random() * 5) }, () => value(1)) }));
    } else if (kind === 4) bodies.push(JSON.stringify({ ...valid(), context: value(1) }));
    else if (kind === 5) bodies.push("[".repeat(Math.floor(random() * 5000)) + "]".repeat(Math.floor(random() * 5000)));
    else if (kind === 6) bodies.push(`{"name":"a","data":${"[".repeat(100)}${"]".repeat(100)}}`);
    else bodies.push(JSON.stringify(valid()));
  }
  return bodies;
}

Deno.test("Deno server under 3,000 random and malformed bodies answers only 2xx/4xx and stays up", async () => {
  const logger = new RecordingLogger();
  const collector = await startCollector({
    port: 0,
    hostname: "127.0.0.1",
    token: "fuzz",
    config: { backends: { sink: { ENGINE: "memory" } } },
    limits: { maxBodyBytes: 8 * 1024 },
    logger,
  });
  const random = seeded(2026);
  const bodies = fuzzBodies(3_000, random);
  const statuses: Record<number, number> = {};
  let accepted = 0;
  for (let i = 0; i < bodies.length; i += 20) {
    await Promise.all(
      bodies.slice(i, i + 20).map(async (body) => {
        const response = await fetch(`${collector.url}/v1/events`, {
          method: "POST",
          headers: { authorization: "Bearer fuzz", "content-type": random() < 0.5 ? "application/json" : "text/plain" },
          body,
        });
        statuses[response.status] = (statuses[response.status] ?? 0) + 1;
        const text = await response.text();
        assert.ok(response.status < 500, `status ${response.status} for ${String(body).slice(0, 200)}: ${text}`);
        if (response.status === 202) accepted += JSON.parse(text).accepted;
        else assert.ok(JSON.parse(text).error, "every error is a JSON body with a code");
      }),
    );
  }
  const health = await fetch(`${collector.url}/v1/health`);
  assert.equal(health.status, 200);
  await health.body?.cancel();
  await collector.shutdown();
  assert.equal((collector.tracker.getBackend("sink") as InMemoryBackend).events.length, accepted);
  assert.ok(statuses[202] > 0 && statuses[400] > 0, JSON.stringify(statuses));
  assert.deepEqual(logger.errors, [], "no internal error was logged");
});
