/**
 * `deno task consume` as an operator runs it: a child process killed with
 * SIGKILL in the middle of a backlog, entries added while it is down (and a
 * poison one), then a restart and a SIGTERM.
 */

import assert from "node:assert/strict";
import type { TrackingEvent } from "@edx/event-tracking";
import { RedisStreamsBus, TRACKING_EVENT_TYPE } from "@edx/event-tracking/redis";
import { HAVE_REDIS, rawClient, type RedisTestServer, startRedisServer, waitFor } from "./_redis.ts";

const CONSUME = new URL("../../src/redis/consume.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;

interface ConsumerProcess {
  readonly child: Deno.ChildProcess;
  stderr(): string;
}

function spawnConsumer(args: string[], env: Record<string, string>): ConsumerProcess {
  const inherited = Deno.env.toObject();
  for (const name of Object.keys(inherited)) {
    if (/^(EVENT_TRACKING_|EVENT_BUS_|EVENTS_|MONGODB_URI$)/.test(name)) delete inherited[name];
  }
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", CONSUME, ...args],
    cwd: ROOT,
    clearEnv: true,
    env: { ...inherited, NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  (async () => {
    for await (const chunk of child.stderr) text += decoder.decode(chunk, { stream: true });
  })();
  return { child, stderr: () => text };
}

async function lines(path: string): Promise<string[]> {
  try {
    const text = await Deno.readTextFile(path);
    return text.split("\n").filter((line) => line !== "");
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
}

async function publish(server: RedisTestServer, count: number, prefix: string): Promise<TrackingEvent[]> {
  const bus = new RedisStreamsBus({ url: server.url, maxLen: 0 });
  const events = Array.from({ length: count }, (_, i) => ({
    id: crypto.randomUUID(),
    name: `${prefix}.${i}`,
    timestamp: new Date().toISOString(),
    context: { i },
    data: { payload: "x".repeat(100) },
  }));
  await Promise.all(events.map((e) => bus.publish("t", e)));
  await bus.close();
  return events;
}

Deno.test({
  name:
    "consume: SIGKILL mid-backlog, entries and a poison entry added while down, restart: all delivered, none pending",
  ignore: !HAVE_REDIS,
  async fn() {
    const server = await startRedisServer();
    const dir = await Deno.makeTempDir();
    const out = `${dir}/out.jsonl`;
    const env = {
      EVENT_BUS_REDIS_CONNECTION_URL: server.url,
      EVENT_TRACKING_CONFIG: JSON.stringify({
        backends: { file: { ENGINE: "logger", OPTIONS: { path: out, max_event_size: null } } },
      }),
      EVENT_TRACKING_DATA_DIR: dir,
    };
    const args = ["--topic", "analytics", "--group", "tracking", "--consumer", "c1", "--batch-size", "5"];
    const raw = await rawClient(server.url);
    let running: ConsumerProcess | undefined;
    try {
      const backlog = await publish(server, 5_000, "backlog");
      running = spawnConsumer(args, env);
      await waitFor(async () => (await lines(out)).length >= 500, "500 lines before the kill", 30_000);
      running.child.kill("SIGKILL");
      const killed = await running.child.status;
      running = undefined;
      assert.equal(killed.signal, "SIGKILL");
      const atKill = (await lines(out)).length;
      assert.ok(atKill < 5_000, `killed mid-backlog (${atKill} lines written)`);

      // While it is down: more entries, two that cannot be decoded, and three read by c1 and not acknowledged.
      const later = await publish(server, 300, "later");
      await raw.send(["XADD", "analytics", "*", "type", TRACKING_EVENT_TYPE, "id", "p", "event_data", "\x02"]);
      await raw.send(["XADD", "analytics", "*", "type", "something.else.v1", "id", "q", "event_data", ""]);
      const more = await publish(server, 5, "more");
      const inFlight = await raw.send<[string, [string, string[]][]][]>(
        ["XREADGROUP", "GROUP", "tracking", "c1", "COUNT", "3", "STREAMS", "analytics", ">"],
      );
      assert.ok(inFlight[0][1].length === 3);

      running = spawnConsumer([...args, "--metrics-port", "0"], env);
      const expected = new Set([...backlog, ...later, ...more].map((e) => e.id));
      await waitFor(
        async () => {
          const seen = new Set((await lines(out)).map((line) => JSON.parse(line).id));
          return [...expected].every((id) => seen.has(id));
        },
        "every good event in the file",
        30_000,
      );
      await waitFor(() => /Metrics at (http:\S+)/.test(running!.stderr()), "the metrics address");
      const metricsUrl = /Metrics at (http:\S+)/.exec(running.stderr())![1];
      await waitFor(async () => {
        const text = await (await fetch(metricsUrl)).text();
        return /event_tracking_redis_consumer_lag\{stream="analytics",group="tracking",consumer="c1"\} 0\n/.test(
          text,
        ) &&
          /event_tracking_redis_consumer_pending\{[^}]*\} 0\n/.test(text);
      }, "lag 0 and nothing pending in the metrics");
      const text = await (await fetch(metricsUrl)).text();
      assert.match(text, /event_tracking_redis_consumer_dead_lettered_total\{[^}]*\} 2\n/);
      assert.match(text, /event_tracking_delivered_total\{backend="root\/file"\} \d+/);

      const stopping = Date.now();
      running.child.kill("SIGTERM");
      const status = await running.child.status;
      const took = Date.now() - stopping;
      assert.equal(status.code, 0, running.stderr());
      assert.ok(took < 10_000, `exited ${took} ms after SIGTERM`);
      assert.match(running.stderr(), /SIGTERM: stopping/);
      assert.match(running.stderr(), /Consumer stopped: \d+ delivered, 2 dead-lettered/);
      running = undefined;

      // Every good event once or (at most the batches in flight at the kill) twice; no torn line; nothing pending.
      const ids = (await lines(out)).map((line) => JSON.parse(line).id as string);
      assert.deepEqual(new Set(ids), expected);
      assert.ok(ids.length - expected.size <= 10, `${ids.length - expected.size} duplicates`);
      const [pending] = await raw.send<[number]>(["XPENDING", "analytics", "tracking"]);
      assert.equal(pending, 0);
      const letters = await raw.send<[string, string[]][]>(["XRANGE", "analytics-dead-letters", "-", "+"]);
      assert.equal(letters.length, 2);
      for (const [, fields] of letters) assert.ok(fields.includes("dead_letter_reason"));
    } finally {
      if (running !== undefined) {
        running.child.kill("SIGKILL");
        await running.child.status;
      }
      await raw.close();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "consume: usage errors exit 2 and name what is missing",
  ignore: !HAVE_REDIS,
  async fn() {
    const noGroup = spawnConsumer(["--consumer", "c1"], { EVENT_BUS_REDIS_CONNECTION_URL: "redis://127.0.0.1:1" });
    assert.equal((await noGroup.child.status).code, 2);
    assert.match(noGroup.stderr(), /--group and --consumer are required/);
    const noUrl = spawnConsumer(["--group", "g", "--consumer", "c1"], {});
    assert.equal((await noUrl.child.status).code, 2);
    assert.match(noUrl.stderr(), /Set EVENT_BUS_REDIS_CONNECTION_URL/);
    const unknown = spawnConsumer(["--group", "g", "--consumer", "c1", "--frm", "0"], {
      EVENT_BUS_REDIS_CONNECTION_URL: "redis://127.0.0.1:1",
    });
    assert.equal((await unknown.child.status).code, 2);
  },
});
