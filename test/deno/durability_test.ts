/**
 * What a 202 and a shutdown guarantee, tried on the real server process:
 * SIGKILL under load, a dead optional sink, and SIGTERM with a deadline.
 */

import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { readJsonLines, startCollectorProcess } from "./_collector_process.ts";

const TOKEN = "durability-test-token";
const HEADERS = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };

function batch(size: number, tag: string): string {
  return JSON.stringify({ events: Array.from({ length: size }, (_, i) => ({ name: "edx.test", data: { tag, i } })) });
}

/** Ids of every event in the sink files and dead letters under `dataDir`; each line must parse. */
async function storedIds(dataDir: string): Promise<{ events: Set<string>; deadLetters: Map<string, Set<string>> }> {
  const events = new Set((await readJsonLines(`${dataDir}/events.jsonl`)).map((event) => event.id as string));
  const deadLetters = new Map<string, Set<string>>();
  let files: string[] = [];
  try {
    files = await readdir(`${dataDir}/dead-letters`);
  } catch {
    // No dead letters.
  }
  for (const file of files.filter((name) => name.endsWith(".jsonl"))) {
    const letters = await readJsonLines(`${dataDir}/dead-letters/${file}`);
    deadLetters.set(file, new Set(letters.map((letter) => letter.id as string)));
  }
  return { events, deadLetters };
}

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test({
  name: "SIGKILL of the collector under load loses no acknowledged event and leaves no torn line",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "collector-crash-" });
    const env = { EVENT_TRACKING_TOKEN: TOKEN, EVENT_TRACKING_DATA_DIR: dataDir };
    try {
      const first = await startCollectorProcess(env);
      const acknowledged = new Set<string>();
      let killed = false;
      const until = Date.now() + 8_000; // a bound, should the kill never come
      const client = async (n: number) => {
        for (let round = 0; !killed && Date.now() < until; round++) {
          try {
            const response = await fetch(`${first.url}/v1/events`, {
              method: "POST",
              headers: HEADERS,
              body: batch(200, `${n}-${round}`),
            });
            if (response.status === 202) { for (const id of (await response.json()).ids) acknowledged.add(id); }
            else await response.body?.cancel();
          } catch {
            // The process was killed mid-request: that request was never acknowledged.
          }
        }
      };
      const clients = Array.from({ length: 16 }, (_, n) => client(n));
      while (acknowledged.size < 30_000 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
      Deno.kill(-first.pid, "SIGKILL");
      killed = true;
      await Promise.all(clients);
      assert.equal((await first.status).signal, "SIGKILL");
      assert.ok(acknowledged.size >= 30_000, `only ${acknowledged.size} events were acknowledged before the kill`);

      // Restart on the same data dir: the write-ahead log is replayed, then SIGTERM writes everything out.
      const second = await startCollectorProcess(env);
      Deno.kill(second.pid, "SIGTERM");
      assert.equal((await second.status).code, 0, second.stderr());
      const { events, deadLetters } = await storedIds(dataDir);
      const missing = [...acknowledged].filter((id) => !events.has(id));
      console.log(
        `${acknowledged.size} events acknowledged before the kill; ${missing.length} missing after the restart`,
      );
      assert.equal(missing.length, 0, `${missing.length} acknowledged event(s) are missing, e.g. ${missing[0]}`);
      assert.equal(deadLetters.size, 0, "nothing should be dead-lettered");

      // Everything delivered was released: a third start has nothing to replay.
      const third = await startCollectorProcess(env);
      Deno.kill(third.pid, "SIGTERM");
      assert.equal((await third.status).code, 0);
      assert.doesNotMatch(third.stderr(), /replaying/);
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "A dead optional MongoDB sink: every request still gets 202, and SIGTERM dead-letters its events by the deadline",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dataDir = await Deno.makeTempDir({ prefix: "collector-dead-sink-" });
    try {
      const collector = await startCollectorProcess({
        EVENT_TRACKING_TOKEN: TOKEN,
        EVENT_TRACKING_DATA_DIR: dataDir,
        EVENT_TRACKING_SHUTDOWN_TIMEOUT_S: "3",
        MONGODB_URI: `mongodb://127.0.0.1:${closedPort()}/tracking`,
      });
      const acknowledged: string[] = [];
      const statuses: number[] = [];
      for (let request = 0; request < 30; request++) {
        const response = await fetch(`${collector.url}/v1/events`, {
          method: "POST",
          headers: HEADERS,
          body: batch(500, `r${request}`),
        });
        statuses.push(response.status);
        if (response.status === 202) acknowledged.push(...(await response.json()).ids);
        else await response.body?.cancel();
      }
      assert.deepEqual(statuses.filter((status) => status !== 202), [], "every request should be accepted");

      const stoppedAt = Date.now();
      Deno.kill(collector.pid, "SIGTERM");
      const status = await collector.status;
      const seconds = (Date.now() - stoppedAt) / 1000;
      assert.equal(status.code, 0, collector.stderr());
      // A bound, not a timing: the deadline is 3 s, and without it this took minutes.
      assert.ok(seconds < 15, `SIGTERM took ${seconds} s`);

      const { events, deadLetters } = await storedIds(dataDir);
      assert.equal(acknowledged.filter((id) => !events.has(id)).length, 0, "the file branch has every event");
      const mongo = deadLetters.get("mongo.jsonl") ?? new Set();
      assert.equal(
        acknowledged.filter((id) => !mongo.has(id)).length,
        0,
        "the MongoDB branch dead-lettered every event",
      );
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
