/**
 * `deno task start` with `EVENT_BUS_REDIS_CONNECTION_URL`: the collector
 * publishes its bus to the stream; `deno task consume` reads it into the
 * collector's default tree; a publish that fails while Redis is down is
 * dead-lettered and `deno task replay` publishes it once Redis is back.
 */

import assert from "node:assert/strict";
import { decodeEntry } from "@edx/event-tracking/redis";
import { readJsonLines, startCollectorProcess } from "../deno/_collector_process.ts";
import { HAVE_REDIS, rawClient, startRedisServer, waitFor } from "./_redis.ts";

const SERVE = new URL("../../src/deno/serve.ts", import.meta.url).pathname;
const CONSUME = new URL("../../src/redis/consume.ts", import.meta.url).pathname;
const ROOT = new URL("../../", import.meta.url).pathname;
const SPEAKS_REDIS = (await Deno.readTextFile(SERVE)).includes("redisBusFromEnv");
if (!SPEAKS_REDIS) {
  console.warn("src/deno/serve.ts does not read EVENT_BUS_REDIS_CONNECTION_URL yet: collector tests ignored");
}

function run(script: string, args: string[], env: Record<string, string>): Deno.ChildProcess {
  const inherited = Deno.env.toObject();
  for (const name of Object.keys(inherited)) {
    if (/^(EVENT_TRACKING_|EVENT_BUS_|EVENTS_|MONGODB_URI$|PORT$)/.test(name)) delete inherited[name];
  }
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "--allow-write", "--allow-sys", script, ...args],
    cwd: ROOT,
    clearEnv: true,
    env: { ...inherited, NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function post(url: string, events: unknown[]): Promise<string[]> {
  const response = await fetch(`${url}/v1/events`, {
    method: "POST",
    headers: { authorization: "Bearer t", "content-type": "application/json" },
    body: JSON.stringify({ events }),
  });
  assert.equal(response.status, 202);
  return (await response.json()).ids;
}

Deno.test({
  name: "collector → Redis stream → consume task: the events, their context, and a replay after an outage",
  ignore: !HAVE_REDIS || !SPEAKS_REDIS,
  async fn() {
    const server = await startRedisServer();
    const dataDir = await Deno.makeTempDir();
    const consumerDir = await Deno.makeTempDir();
    const env = {
      EVENT_TRACKING_TOKEN: "t",
      EVENT_TRACKING_HOSTNAME: "127.0.0.1",
      EVENT_TRACKING_DATA_DIR: dataDir,
      EVENT_BUS_REDIS_CONNECTION_URL: server.url,
      EVENT_BUS_TOPIC_PREFIX: "dev",
      EVENTS_SERVICE_NAME: "edge",
    };
    const raw = await rawClient(server.url);
    try {
      const collector = await startCollectorProcess(env);
      assert.match(collector.stderr(), new RegExp(`Event bus: Redis stream dev-analytics at ${server.url}`));
      const ids = await post(collector.url, [
        { name: "edx.course.enrollment.activated", data: { course_id: "course-v1:edX+DemoX+Demo" } },
        { name: "problem_check", data: { grade: 1 }, context: { user_id: 5 } },
      ]);
      await waitFor(async () => (await raw.send<number>(["XLEN", "dev-analytics"])) === 2, "two entries");
      const entries = await raw.sendBinary<[Uint8Array, Uint8Array[]][]>(["XRANGE", "dev-analytics", "-", "+"]);
      const decoded = entries.map(([, fields]) => decodeEntry(fields));
      assert.deepEqual(decoded.map((d) => d.event.id), ids);
      assert.equal(decoded[0].headers.source, "openedx/edge/web");
      assert.equal(decoded[1].event.context.user_id, 5);

      // The consumer, on the collector's default tree, in a directory of its own.
      const consumer = run(CONSUME, ["--group", "tracking", "--consumer", "c1"], {
        EVENT_BUS_REDIS_CONNECTION_URL: server.url,
        EVENT_BUS_TOPIC_PREFIX: "dev",
        EVENT_TRACKING_DATA_DIR: consumerDir,
      });
      const consumed = `${consumerDir}/consumers/c1/events.jsonl`;
      await waitFor(async () => (await readJsonLines(consumed)).length === 2, "the consumer's events.jsonl", 20_000);
      const lines = await readJsonLines(consumed);
      const collected = await readJsonLines(`${dataDir}/events.jsonl`);
      assert.deepEqual(lines, collected); // the same events, context included, on both sides of the bus

      // Redis goes down: the 202 still comes (write-ahead log); the publish is retried, then dead-lettered.
      await server.kill();
      const [lost] = await post(collector.url, [{ name: "while.down" }]);
      await waitFor(
        async () => (await readJsonLines(`${dataDir}/dead-letters/bus.jsonl`)).length === 1,
        "the dead letter",
        20_000,
      );
      assert.equal((await readJsonLines(`${dataDir}/dead-letters/bus.jsonl`))[0].id, lost);
      Deno.kill(-collector.pid, "SIGTERM");
      assert.equal((await collector.status).code, 0, collector.stderr());

      // Redis is back (empty): `deno task replay` publishes the dead letter.
      await server.start();
      const replay = run(SERVE, ["replay"], env);
      const { code, stdout } = await replay.output();
      assert.equal(code, 0);
      assert.match(new TextDecoder().decode(stdout), /root\/bus: 1 dead letter\(s\) replayed/);
      const [[, fields]] = await raw.sendBinary<[Uint8Array, Uint8Array[]][]>(["XRANGE", "dev-analytics", "-", "+"]);
      assert.equal(decodeEntry(fields).event.id, lost);

      consumer.kill("SIGTERM");
      const stopped = await consumer.output();
      assert.equal(stopped.code, 0, new TextDecoder().decode(stopped.stderr));
    } finally {
      await raw.close();
      await server.stop();
      await Deno.remove(dataDir, { recursive: true });
      await Deno.remove(consumerDir, { recursive: true });
    }
  },
});
