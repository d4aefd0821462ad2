// The operator console's API on the Worker: dead letters kept by the DeadLetterObject (listed, replayed onto the
// Queue, bounded, kept across a restart), metrics as JSON, the console page, and the live tail's
// ticket (a browser's WebSocket offers it as a subprotocol; the Durable Object selects "event-tracking").
// In-process with stand-in bindings first (node:sqlite as the object's storage), then in workerd through Miniflare.

import assert from "node:assert/strict";
import { SignJWT } from "jose";
import {
  type CloudflareQueueSendRequest,
  CloudflareQueueTransport,
  createWorker,
  type DeadLetterNamespaceLike,
  DeadLetterObject,
  durableObjectDeadLetterStore,
  MAX_DEAD_LETTERS_PER_BRANCH,
  type WorkerEnv,
} from "@edx/event-tracking/cloudflare";
import type { DeadLetterBranch, DeadLetterReplay } from "@edx/event-tracking/http";
import {
  AsyncRoutingBackend,
  InMemoryBackend,
  type MetricsSnapshot,
  Tracker,
  type TrackerConfig,
} from "@edx/event-tracking";
import { freePort } from "../_mongo_server.ts";
import { RecordingLogger } from "../_helpers.ts";
import { queueBatchOf, sqliteStorage } from "./_stand_ins.ts";
import { bundleWorker, type Miniflare, startWorker, waitFor } from "./_miniflare.ts";

const TOKEN = "test-token-not-a-secret";
const AUTHORIZED = { authorization: `Bearer ${TOKEN}` };
const ctx = { waitUntil() {}, passThroughOnException() {} };

/** A DeadLetterObject over an in-memory SQLite database (node:sqlite), and a namespace whose stub is the object. */
function deadLetterObject() {
  const { sql } = sqliteStorage();
  const object = new DeadLetterObject({ storage: { sql } }, {});
  const namespace: DeadLetterNamespaceLike = { idFromName: (name) => name, get: () => object };
  return { object, namespace, sql };
}

function letter(id: string, backend = "sink"): string {
  return JSON.stringify({
    id,
    name: "edx.test.failing",
    timestamp: "2026-01-01T00:00:00.000Z",
    context: {},
    data: {},
    deadLetter: { error: "Error: down", attempts: 1, backend, at: `2026-01-01T00:00:0${id.length}.000Z` },
  });
}

Deno.test("DeadLetterObject keeps letters per branch, newest first, and refuses those beyond the bound of a branch", async () => {
  const { object, sql } = deadLetterObject();
  assert.equal(await object.add("logs", "root/logs", [letter("a"), letter("b"), letter("c")]), 3);
  assert.equal(await object.add("xapi", "root/xapi", [letter("x")]), 1);
  const [logs, xapi] = await object.list(2);
  assert.deepEqual([logs.backendName, logs.path, logs.count, logs.newest.map((entry) => entry.id)], [
    "logs",
    "root/logs",
    3,
    ["c", "b"],
  ]);
  assert.deepEqual(logs.newest[0], {
    id: "c",
    name: "edx.test.failing",
    timestamp: "2026-01-01T00:00:00.000Z",
    error: "Error: down",
    attempts: 1,
    backend: "sink",
    at: "2026-01-01T00:00:01.000Z",
  });
  assert.equal(xapi.count, 1);
  // take() hands out the oldest after a key, and removes nothing; remove() does.
  const first = await object.take("logs", 2);
  assert.deepEqual(first.letters.map((line) => JSON.parse(line).id), ["a", "b"]);
  const rest = await object.take("logs", 2, first.keys[1]);
  assert.deepEqual(rest.letters.map((line) => JSON.parse(line).id), ["c"]);
  assert.equal((await object.list(0))[0].count, 3);
  assert.equal(await object.remove([...first.keys, 12345]), 2);
  assert.deepEqual((await object.list(5)).map((b) => [b.backendName, b.count]), [["logs", 1], ["xapi", 1]]);
  await object.remove(rest.keys);
  assert.deepEqual((await object.list(5)).map((b) => b.backendName), ["xapi"]);

  // The bound: a branch that holds MAX_DEAD_LETTERS_PER_BRANCH - 1 takes one more, and no more.
  sql.exec("UPDATE dead_letter_branches SET count = ? WHERE backend_name = 'xapi'", MAX_DEAD_LETTERS_PER_BRANCH - 1);
  assert.equal(await object.add("xapi", "root/xapi", [letter("y"), letter("z")]), 1);
  assert.equal(await object.add("xapi", "root/xapi", [letter("w")]), 0);
  assert.equal((await object.list(0))[0].count, MAX_DEAD_LETTERS_PER_BRANCH);

  await assert.rejects(object.add("", "root/x", []), TypeError);
  await assert.rejects(object.add("x", "root/x", [1 as unknown as string]), TypeError);
  await assert.rejects(object.list(-1), RangeError);
  await assert.rejects(object.take("logs", 0), RangeError);
  await assert.rejects(object.remove(["1" as unknown as number]), TypeError);
});

Deno.test("durableObjectDeadLetterStore() replays in chunks, at most maxPerReplay letters a request, oldest first", async () => {
  const { object, namespace } = deadLetterObject();
  const sent: CloudflareQueueSendRequest[] = [];
  const transport = new CloudflareQueueTransport({
    queue: { sendBatch: (messages) => Promise.resolve(void sent.push(...messages)) },
    path: "backends.logs",
  });
  const logs = new AsyncRoutingBackend({
    backendName: "logs",
    transport,
    backends: { sink: new InMemoryBackend() },
    deadLetter: new InMemoryBackend(),
  });
  const tracker = new Tracker({ backends: { logs } });
  await object.add("logs", "root/logs", ["a", "b", "c", "d", "e"].map((id) => letter(id)));
  const store = durableObjectDeadLetterStore(namespace, tracker, { replayChunk: 2, maxPerReplay: 3 });
  assert.deepEqual(await store.replay("logs"), {
    backendName: "logs",
    replayed: 3,
    delivered: 0,
    deadLettered: 0,
    failed: 0,
    pending: 3,
  });
  assert.deepEqual(sent.map((m) => (m.body as { event: { id: string } }).event.id), ["a", "b", "c"]);
  const [branch] = await store.list(5);
  assert.deepEqual([branch.count, branch.newest.map((entry) => entry.id)], [2, ["e", "d"]]);
  assert.throws(() => durableObjectDeadLetterStore(namespace, tracker, { replayChunk: 0 }), RangeError);
  assert.throws(() => durableObjectDeadLetterStore({} as never, tracker), TypeError);
  await tracker.close();
});

/** A tree whose branch "failing" dead-letters every event at its first failure, beside a healthy one. */
const FAILING_TREE: TrackerConfig = {
  backends: {
    failing: { ENGINE: "async_routing", OPTIONS: { max_attempts: 1, backends: { sink: { ENGINE: "failing" } } } },
    healthy: { ENGINE: "async_routing", OPTIONS: { backends: { sink: { ENGINE: "memory" } } } },
  },
};

/** Stand-in bindings: a Queue that records (or refuses) what is sent, and the dead-letter object in-process. */
function bindings(deadLetters: DeadLetterNamespaceLike | undefined) {
  const sent: CloudflareQueueSendRequest[] = [];
  const queue = { down: false };
  const env: WorkerEnv = {
    EVENT_TRACKING_TOKEN: TOKEN,
    EVENTS_QUEUE: {
      sendBatch: (messages) =>
        queue.down ? Promise.reject(new Error("Queue down (test)")) : Promise.resolve(void sent.push(...messages)),
    },
    EVENT_BUS: { idFromName: (name) => name, get: () => ({ fetch, publish: () => Promise.resolve(0) }) },
    DEAD_LETTERS: deadLetters,
  };
  return { env, sent, queue };
}

function request(path: string, init: RequestInit = {}): Request {
  return new Request(`https://collector.test${path}`, { ...init, headers: { ...AUTHORIZED, ...init.headers } });
}

Deno.test("createWorker(): dead letters reach the DeadLetterObject, are listed, and a replay removes them once the Queue has them again", async () => {
  const { namespace } = deadLetterObject();
  const logger = new RecordingLogger();
  const worker = createWorker({
    config: FAILING_TREE,
    logger,
    engines: { failing: () => ({ send: () => Promise.reject(new Error("sink down")) }) },
  });
  const { env, sent, queue } = bindings(namespace);
  const posted = await worker.fetch(
    request("/v1/events", { method: "POST", body: JSON.stringify({ events: [{ name: "a" }, { name: "b" }] }) }),
    env,
    ctx,
  );
  const { ids } = await posted.json() as { ids: string[] };
  assert.equal(posted.status, 202);
  // Each event went to both branches; the consumer dead-letters those of "failing".
  await worker.queue(queueBatchOf(sent.splice(0)), env, ctx);

  const listed = await worker.fetch(request("/v1/dead-letters?newest=1"), env, ctx);
  const { branches } = await listed.json() as { branches: DeadLetterBranch[] };
  assert.equal(listed.status, 200);
  assert.deepEqual(branches.map((b) => [b.backendName, b.path, b.count]), [
    ["failing", "root/failing", 2],
    ["healthy", "root/healthy", 0],
  ]);
  assert.equal(branches[0].newest.length, 1);
  assert.ok(ids.includes(branches[0].newest[0].id));
  assert.match(branches[0].newest[0].error, /sink down/);

  // The isolate's metrics: intake (fetch) and delivery (queue) summed per path.
  const metrics = await (await worker.fetch(request("/v1/metrics.json"), env, ctx)).json() as {
    backends: MetricsSnapshot;
  };
  assert.equal(metrics.backends["root/failing"].received, 2, "counted by fetch()");
  assert.equal(metrics.backends["root/failing"].deadLettered, 2, "counted by queue()");
  assert.equal(metrics.backends["root/healthy/sink"].delivered, 2);

  // The Queue refuses the replay: the letters stay, and the answer is 503.
  queue.down = true;
  const refused = await worker.fetch(request("/v1/dead-letters/failing/replay", { method: "POST" }), env, ctx);
  assert.equal(refused.status, 503, await refused.text());
  const kept = await (await worker.fetch(request("/v1/dead-letters"), env, ctx)).json() as {
    branches: DeadLetterBranch[];
  };
  assert.equal(kept.branches[0].count, 2, "nothing lost when the replay fails");

  queue.down = false;
  const replayed = await worker.fetch(request("/v1/dead-letters/failing/replay", { method: "POST" }), env, ctx);
  assert.deepEqual(await replayed.json() as DeadLetterReplay, {
    backendName: "failing",
    replayed: 2,
    delivered: 0,
    deadLettered: 0,
    failed: 0,
    pending: 2,
  });
  // Back on the Queue, owed to the sink that failed, and no longer in the object.
  assert.deepEqual(sent.map((m) => (m.body as { event: { id: string } }).event.id).sort(), [...ids].sort());
  assert.deepEqual(sent.map((m) => (m.body as { targets?: string[] }).targets), [["sink"], ["sink"]]);
  const after = await (await worker.fetch(request("/v1/dead-letters"), env, ctx)).json() as {
    branches: DeadLetterBranch[];
  };
  assert.equal(after.branches[0].count, 0);

  const unknown = await worker.fetch(request("/v1/dead-letters/nope/replay", { method: "POST" }), env, ctx);
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json() as { error: string }).error, "unknown_branch");
});

Deno.test("createWorker(): without the DEAD_LETTERS binding dead letters are only logged, and the routes answer 404", async () => {
  const worker = createWorker({ config: FAILING_TREE, engines: { failing: () => ({ send() {} }) } });
  const { env } = bindings(undefined);
  const response = await worker.fetch(request("/v1/dead-letters"), env, ctx);
  assert.equal(response.status, 404);
  assert.equal((await response.json() as { error: string }).error, "dead_letters_unavailable");
});

Deno.test("createWorker(): a dead-letter object that fails or is full is reported, and the letter is still logged", async () => {
  const logger = new RecordingLogger();
  const { object, namespace, sql } = deadLetterObject();
  await object.add("failing", "root/failing", [letter("old")]);
  sql.exec("UPDATE dead_letter_branches SET count = ?", MAX_DEAD_LETTERS_PER_BRANCH);
  const worker = createWorker({
    config: FAILING_TREE,
    logger,
    engines: { failing: () => ({ send: () => Promise.reject(new Error("sink down")) }) },
  });
  const { env, sent } = bindings(namespace);
  await (await worker.fetch(request("/v1/events", { method: "POST", body: '{"name":"a"}' }), env, ctx)).body
    ?.cancel();
  await worker.queue(queueBatchOf(sent.splice(0)), env, ctx);
  assert.match(logger.errors.map((e) => e.message).join("\n"), /refused 1 dead letter\(s\).*100000.*in the log above/);

  const broken: DeadLetterNamespaceLike = {
    idFromName: (name) => name,
    get: () => ({ ...object, add: () => Promise.reject(new Error("object unavailable")) } as never),
  };
  const other = bindings(broken);
  await (await worker.fetch(request("/v1/events", { method: "POST", body: '{"name":"a"}' }), other.env, ctx)).body
    ?.cancel();
  await worker.queue(queueBatchOf(other.sent.splice(0)), other.env, ctx);
  assert.match(logger.errors.at(-1)!.message, /1 dead letter\(s\) were not stored.*object unavailable.*in the log/);
});

// ---------------------------------------------------------------------------------------------------------------
// In workerd.

/** A ticket signed as the collector signs them, for `client`, expired. */
async function expiredTicket(token: string): Promise<string> {
  const AUDIENCE = "event-tracking:bus";
  const key = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(`${AUDIENCE}\n${token}`)));
  const past = Math.floor(Date.now() / 1000) - 120;
  return await new SignJWT({}).setProtectedHeader({ alg: "HS256", kid: "default" }).setAudience(AUDIENCE)
    .setIssuedAt(past - 30).setExpirationTime(past).sign(key);
}

Deno.test({
  name: "worker console API in workerd: dead letters in the Durable Object, replay, metrics, page, bus tickets",
  // Miniflare keeps process-wide hooks after dispose() (see worker_test.ts); everything opened is closed in `finally`.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const deadMongo = `mongodb://127.0.0.1:${freePort()}/?directConnection=true&serverSelectionTimeoutMS=200`;
    const config = {
      backends: {
        failing: {
          ENGINE: "async_routing",
          OPTIONS: {
            processors: [{ ENGINE: "name_allowlist", OPTIONS: { allowlist: ["edx.test.failing"] } }],
            max_attempts: 1,
            backends: { down: { ENGINE: "mongo", OPTIONS: { uri: deadMongo, max_retries: 0 } } },
          },
        },
        logs: {
          ENGINE: "async_routing",
          OPTIONS: {
            processors: [{ ENGINE: "name_allowlist", OPTIONS: { allowlist: ["edx.ui.click"] } }],
            backends: { console: { ENGINE: "logger", OPTIONS: { max_event_size: null } } },
          },
        },
        bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["edx.course.enrollment.activated"] } },
      },
    };
    const vars = { EVENT_TRACKING_TOKEN: TOKEN, EVENT_TRACKING_CONFIG: JSON.stringify(config) };
    const persist = await Deno.makeTempDir({ prefix: "event-tracking-do-" });
    let output = "";
    let mf: Miniflare | undefined;
    let bundle: string | undefined;
    try {
      bundle = await bundleWorker();
      mf = await startWorker({ bundle, vars, persist, stdout: (text) => output += text });
      const origin = String(await mf.ready).replace(/\/$/, "");
      const worker = mf;
      const get = (path: string, headers: Record<string, string> = AUTHORIZED) =>
        worker.dispatchFetch(`${origin}${path}`, { headers });
      const post = (path: string, body?: unknown) =>
        worker.dispatchFetch(`${origin}${path}`, {
          method: "POST",
          headers: { ...AUTHORIZED, "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      const failingBranch = async () => {
        const response = await get("/v1/dead-letters?newest=5");
        assert.equal(response.status, 200);
        const { branches } = await response.json() as { branches: DeadLetterBranch[] };
        return branches;
      };
      let ids: string[] = [];

      await t.step("dead letters of a failing branch reach the Durable Object, and are listed", async () => {
        const accepted = await post("/v1/events", { events: [1, 2, 3].map(() => ({ name: "edx.test.failing" })) });
        assert.equal(accepted.status, 202);
        ids = (await accepted.json() as { ids: string[] }).ids;
        const branches = await waitFor("three dead letters listed", async () => {
          const branches = await failingBranch();
          return branches[0]?.count === 3 ? branches : undefined;
        }, 30_000);
        assert.deepEqual(branches.map((b) => [b.backendName, b.path, b.count]), [
          ["failing", "root/failing", 3],
          ["logs", "root/logs", 0],
        ]);
        const newest = branches[0].newest;
        assert.deepEqual(newest.map((entry) => entry.id).sort(), [...ids].sort());
        for (const entry of newest) {
          assert.equal(entry.name, "edx.test.failing");
          assert.equal(entry.backend, "down");
          assert.equal(entry.attempts, 1);
          assert.match(entry.error, /MongoServerSelectionError/);
        }
        const times = newest.map((entry) => entry.at);
        assert.deepEqual(times, [...times].sort().reverse(), "newest first");
        // Still logged whole, as before.
        for (const id of ids) assert.match(output, new RegExp(`"id":"${id}"[^\\n]*"deadLetter"`));
        const anonymous = await get("/v1/dead-letters", {});
        await anonymous.body?.cancel();
        assert.equal(anonymous.status, 401);
      });

      await t.step("a replay queues the letters again and removes them; failing again, they come back", async () => {
        const started = new Date().toISOString();
        const response = await post("/v1/dead-letters/failing/replay");
        assert.deepEqual(await response.json(), {
          backendName: "failing",
          replayed: 3,
          delivered: 0,
          deadLettered: 0,
          failed: 0,
          pending: 3,
        });
        // Delivered again by the queue consumer, failing again: three new letters, not six.
        const branch = await waitFor("the replayed letters dead-lettered again", async () => {
          const [branch] = await failingBranch();
          return branch.count === 3 && branch.newest.every((entry) => entry.at > started) ? branch : undefined;
        }, 30_000);
        assert.deepEqual(branch.newest.map((entry) => entry.id).sort(), [...ids].sort());
        for (const id of ids) {
          const lines = output.split("\n").filter((line) =>
            line.includes(`"id":"${id}"`) && line.includes("deadLetter")
          );
          assert.equal(lines.length, 2, `event ${id} dead-lettered twice (logged)`);
        }
        const unknown = await post("/v1/dead-letters/nope/replay");
        assert.equal(unknown.status, 404);
        assert.equal((await unknown.json() as { error: string }).error, "unknown_branch");
      });

      await t.step(
        "GET /v1/metrics.json answers the Worker's counters (the MetricsObject's totals) as JSON",
        async () => {
          const response = await get("/v1/metrics.json");
          assert.equal(response.status, 200);
          assert.match(response.headers.get("content-type") ?? "", /application\/json/);
          const metrics = await response.json() as { at: string; backends: MetricsSnapshot; clientDisconnects: number };
          assert.ok(!Number.isNaN(Date.parse(metrics.at)));
          assert.equal(typeof metrics.clientDisconnects, "number");
          // Intake counted by fetch(), delivery by queue(), both reported to the MetricsObject and summed there.
          assert.ok(metrics.backends["root/failing"].received >= 3, JSON.stringify(metrics.backends));
          assert.ok(metrics.backends["root/failing"].deadLettered >= 6, JSON.stringify(metrics.backends));
          assert.ok(metrics.backends["root/failing/down"].failed >= 6, JSON.stringify(metrics.backends));
          const negotiated = await get("/v1/metrics", { ...AUTHORIZED, accept: "application/json" });
          assert.ok("backends" in (await negotiated.json() as object));
        },
      );

      await t.step("GET /console answers the page", async () => {
        const response = await get("/console", {});
        assert.equal(response.status, 200);
        assert.match(response.headers.get("content-type") ?? "", /text\/html/);
        assert.match(await response.text(), /<html/i);
      });

      await t.step(
        "a bus ticket opens the tail from a WebSocket client, which selects event-tracking; bad tickets are 401",
        async () => {
          const issued = await post("/v1/bus/tickets");
          assert.equal(issued.status, 200);
          const { ticket, protocol, expiresIn } = await issued.json() as {
            ticket: string;
            protocol: string;
            expiresIn: number;
          };
          assert.deepEqual([protocol, expiresIn], ["event-tracking", 30]);
          const url = `${origin.replace(/^http/, "ws")}/v1/bus/subscribe?pattern=${
            encodeURIComponent(String.raw`edx\.course\.`)
          }`;
          const socket = new WebSocket(url, ["event-tracking", `ticket.${ticket}`]);
          const names: string[] = [];
          socket.onmessage = (event) => names.push(JSON.parse(String(event.data)).name);
          try {
            await new Promise<void>((resolve, reject) => {
              socket.onopen = () => resolve();
              socket.onerror = (event) => reject(new Error(`The WebSocket failed: ${(event as ErrorEvent).message}`));
            });
            assert.equal(socket.protocol, "event-tracking");
            const accepted = await post("/v1/events", { name: "edx.course.enrollment.activated" });
            assert.equal(accepted.status, 202);
            await waitFor("the event on the tail", () => names.length >= 1 || undefined);
            assert.deepEqual(names, ["edx.course.enrollment.activated"]);
          } finally {
            const closed = new Promise((resolve) => socket.onclose = resolve);
            socket.close(1000, "done");
            await closed;
          }

          const forged = `${ticket.slice(0, ticket.lastIndexOf(".") + 1)}${"A".repeat(43)}`;
          for (const bad of [forged, await expiredTicket(TOKEN), await expiredTicket("another-token"), "x"]) {
            const response = await worker.dispatchFetch(`${origin}/v1/bus/subscribe?pattern=.*`, {
              headers: { upgrade: "websocket", "sec-websocket-protocol": `event-tracking, ticket.${bad}` },
            });
            await response.body?.cancel();
            assert.equal(response.status, 401, bad);
          }
          const anonymous = await worker.dispatchFetch(`${origin}/v1/bus/tickets`, { method: "POST" });
          await anonymous.body?.cancel();
          assert.equal(anonymous.status, 401);
        },
      );

      await t.step("the dead letters outlive a restart (the Durable Object's storage)", async () => {
        await worker.dispose();
        mf = undefined;
        mf = await startWorker({ bundle: bundle!, vars, persist, stdout: (text) => output += text });
        const restarted = mf;
        const response = await restarted.dispatchFetch(
          `${String(await restarted.ready).replace(/\/$/, "")}/v1/dead-letters`,
          {
            headers: AUTHORIZED,
          },
        );
        const { branches } = await response.json() as { branches: DeadLetterBranch[] };
        assert.equal(branches[0].count, 3);
        assert.deepEqual(branches[0].newest.map((entry) => entry.id).sort(), [...ids].sort());
      });
    } catch (error) {
      console.error(`The Worker's output:\n${output.slice(-8_000)}`);
      throw error;
    } finally {
      if (Deno.env.get("DUMP_WORKER_OUTPUT")) console.log(output);
      await mf?.dispose();
      if (bundle !== undefined) await Deno.remove(bundle, { recursive: true });
      await Deno.remove(persist, { recursive: true });
    }
  },
});
