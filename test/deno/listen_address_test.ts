import assert from "node:assert/strict";
import { startCollectorProcess } from "./_collector_process.ts";

/** Starts `deno task start`'s server with `env`, checks that it answers, stops it; returns its banner. */
async function banner(env: Record<string, string>): Promise<string> {
  const dataDir = await Deno.makeTempDir();
  const collector = await startCollectorProcess({ EVENT_TRACKING_DATA_DIR: dataDir, ...env });
  try {
    const url = new URL(collector.url);
    // An unspecified address is reached through the loopback.
    if (url.hostname === "0.0.0.0") url.hostname = "127.0.0.1";
    const health = await fetch(new URL("/v1/health", url));
    assert.equal(health.status, 200);
    await health.body?.cancel();
    return collector.stderr();
  } finally {
    Deno.kill(collector.pid, "SIGTERM");
    await collector.status;
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("deno task start without EVENT_TRACKING_TOKEN listens on 127.0.0.1 only, and prints the development token", async () => {
  const text = await banner({});
  assert.match(text, /development token dev-\S+/);
  assert.match(text, /listening on http:\/\/127\.0\.0\.1:\d+/);
});

Deno.test("deno task start without EVENT_TRACKING_TOKEN stays on 127.0.0.1 whatever EVENT_TRACKING_HOSTNAME says", async () => {
  const text = await banner({ EVENT_TRACKING_HOSTNAME: "0.0.0.0" });
  assert.match(text, /listening on http:\/\/127\.0\.0\.1:\d+/);
});

Deno.test("deno task start with EVENT_TRACKING_TOKEN listens on 0.0.0.0, or on EVENT_TRACKING_HOSTNAME when set", async () => {
  let text = await banner({ EVENT_TRACKING_TOKEN: "listen-token" });
  assert.doesNotMatch(text, /development token/);
  assert.match(text, /listening on http:\/\/0\.0\.0\.0:\d+/);
  text = await banner({ EVENT_TRACKING_TOKEN: "listen-token", EVENT_TRACKING_HOSTNAME: "127.0.0.2" });
  assert.match(text, /listening on http:\/\/127\.0\.0\.2:\d+/);
});
