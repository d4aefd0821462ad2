/**
 * The console's routes on the real Deno server: dead letters read from the
 * branches' files and replayed, and the live tail opened with a ticket.
 */

import assert from "node:assert/strict";
import { type Backend, createTracker, type TrackingEvent } from "../../mod.ts";
import { fileDeadLetterStore, replayDeadLetters, startCollector } from "../../src/deno/mod.ts";
import { RecordingLogger } from "../_helpers.ts";

const TOKEN = "secret";
const auth = { authorization: `Bearer ${TOKEN}` };

// The sink the test is not about: it fails while `broken.value` holds, then takes events.
function flakySink(broken: { value: boolean }, received: TrackingEvent[]): Backend {
  return {
    send(event) {
      if (broken.value) return Promise.reject(new Error("warehouse unreachable"));
      received.push(event);
    },
  };
}

Deno.test("GET /v1/dead-letters counts and shows a failing branch's dead letters; replay reports them delivered again", async () => {
  const dataDir = await Deno.makeTempDir();
  const broken = { value: true };
  const received: TrackingEvent[] = [];
  const collector = await startCollector({
    port: 0,
    hostname: "127.0.0.1",
    token: TOKEN,
    dataDir,
    logger: new RecordingLogger(),
    config: {
      backends: {
        healthy: { ENGINE: "async_routing", OPTIONS: { backends: { sink: { ENGINE: "memory" } } } },
        warehouse: {
          ENGINE: "async_routing",
          OPTIONS: { max_attempts: 2, backoff: { initial_ms: 1 }, backends: { sink: { ENGINE: "test.flaky" } } },
        },
      },
    },
    engines: { "test.flaky": () => flakySink(broken, received) },
  });
  const post = (events: unknown[]) =>
    fetch(`${collector.url}/v1/events`, { method: "POST", headers: auth, body: JSON.stringify({ events }) });
  const list = async (newest = 2) =>
    (await (await fetch(`${collector.url}/v1/dead-letters?newest=${newest}`, { headers: auth })).json()).branches;

  assert.deepEqual(await list(), [
    { backendName: "healthy", path: "root/healthy", count: 0, newest: [] },
    { backendName: "warehouse", path: "root/warehouse", count: 0, newest: [] },
  ]);
  assert.equal((await post([1, 2, 3].map((i) => ({ name: `edx.test.${i}` })))).status, 202);
  await collector.tracker.flush();
  const [healthy, warehouse] = await list();
  assert.equal(healthy.count, 0);
  assert.equal(warehouse.count, 3);
  assert.equal(warehouse.newest.length, 2);
  assert.deepEqual(Object.keys(warehouse.newest[0]), ["id", "name", "timestamp", "error", "attempts", "backend", "at"]);
  assert.equal(warehouse.newest[0].error, "Error: warehouse unreachable");
  assert.equal(warehouse.newest[0].attempts, 2);
  assert.equal(warehouse.newest[0].backend, "sink");

  // Counted as appended: five more, and the count follows without rereading the file from the start.
  assert.equal((await post([4, 5, 6, 7, 8].map((i) => ({ name: `edx.test.${i}` })))).status, 202);
  await collector.tracker.flush();
  const [, more] = await list(0);
  assert.equal(more.count, 8);
  assert.deepEqual(more.newest, []);

  // Still broken: every one fails again, and the report says so.
  const failedAgain = await fetch(`${collector.url}/v1/dead-letters/warehouse/replay`, {
    method: "POST",
    headers: auth,
  });
  assert.deepEqual(await failedAgain.json(), {
    backendName: "warehouse",
    replayed: 8,
    delivered: 0,
    deadLettered: 8,
    failed: 0,
    pending: 0,
  });
  assert.equal((await list())[1].count, 8, "the new dead-letter file, counted afresh");

  broken.value = false;
  const replayed = await fetch(`${collector.url}/v1/dead-letters/warehouse/replay`, { method: "POST", headers: auth });
  assert.deepEqual(await replayed.json(), {
    backendName: "warehouse",
    replayed: 8,
    delivered: 8,
    deadLettered: 0,
    failed: 0,
    pending: 0,
  });
  assert.equal(received.length, 8);
  assert.equal((await list())[1].count, 0);
  const unknown = await fetch(`${collector.url}/v1/dead-letters/nope/replay`, { method: "POST", headers: auth });
  assert.equal(unknown.status, 404);
  assert.match((await unknown.json()).message, /No async branch named "nope".*"healthy", "warehouse"/);
  await collector.shutdown();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("fileDeadLetterStore counts a claimed file left by an interrupted replay, and lists unreadable lines as such", async () => {
  const dataDir = await Deno.makeTempDir();
  const tracker = createTracker({ backends: { caliper: { ENGINE: "async_routing" } } }, { dataDir });
  const dir = `${dataDir}/dead-letters`;
  await Deno.mkdir(dir, { recursive: true });
  const letter = (id: string) =>
    JSON.stringify({
      id,
      name: "edx.x",
      timestamp: "2026-11-30T00:00:00.000Z",
      context: {},
      data: {},
      deadLetter: { error: "E", attempts: 5, backend: "sink", at: "2026-11-30T00:00:01.000Z" },
    });
  await Deno.writeTextFile(`${dir}/caliper.jsonl.replaying-1-abc`, `${letter("old-1")}\n${letter("old-2")}\n`);
  await Deno.writeTextFile(`${dir}/caliper.jsonl`, `${letter("new-1")}\n{not json\n`);
  const [branch] = await fileDeadLetterStore(tracker).list(3);
  assert.equal(branch.count, 4);
  assert.deepEqual(branch.newest.map((entry) => entry.id), ["", "new-1", "old-2"]);
  assert.match(branch.newest[0].error, /^unreadable dead letter \(.*\): \{not json$/);
  await tracker.close();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("replayDeadLetters(tracker) reports, per branch, what was delivered again", async () => {
  const dataDir = await Deno.makeTempDir();
  const tracker = createTracker({ backends: { caliper: { ENGINE: "async_routing" } } }, { dataDir });
  await Deno.mkdir(`${dataDir}/dead-letters`, { recursive: true });
  await Deno.writeTextFile(
    `${dataDir}/dead-letters/caliper.jsonl`,
    JSON.stringify({ id: "1", name: "x", timestamp: "2026-11-30T00:00:00.000Z", context: {}, data: {} }) + "\n",
  );
  assert.deepEqual(await replayDeadLetters(tracker), {
    "root/caliper": { replayed: 1, delivered: 1, deadLettered: 0, failed: 0 },
  });
  await tracker.close();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("the live tail opens with a ticket offered as a subprotocol, selects event-tracking, and filters on the server", async () => {
  const dataDir = await Deno.makeTempDir();
  const collector = await startCollector({ port: 0, hostname: "127.0.0.1", token: TOKEN, dataDir });
  const { ticket } = await (await fetch(`${collector.url}/v1/bus/tickets`, { method: "POST", headers: auth })).json();
  const url = `${collector.url.replace("http", "ws")}/v1/bus/subscribe?pattern=${encodeURIComponent("edx\\.video\\.")}`;
  const socket = new WebSocket(url, ["event-tracking", `ticket.${ticket}`]);
  const received: string[] = [];
  const two = new Promise<void>((resolve) => {
    socket.onmessage = (message) => {
      received.push(JSON.parse(message.data).name);
      if (received.length === 2) resolve();
    };
  });
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  assert.equal(socket.protocol, "event-tracking");
  const names = ["edx.video.played", "edx.ui.click", "edx.video.paused"];
  const response = await fetch(`${collector.url}/v1/events`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ events: names.map((name) => ({ name })) }),
  });
  assert.equal(response.status, 202);
  await two;
  assert.deepEqual(received, ["edx.video.played", "edx.video.paused"]);
  const closed = new Promise((resolve) => socket.onclose = resolve);
  socket.close();
  await closed;

  // A forged ticket: the handshake is refused, no socket opens.
  const forged = new WebSocket(url, ["event-tracking", `ticket.${ticket.slice(0, -4)}AAAA`]);
  const outcome = await new Promise<string>((resolve) => {
    forged.onopen = () => resolve("open");
    forged.onerror = () => resolve("refused");
  });
  assert.equal(outcome, "refused");
  await collector.shutdown();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("fileDeadLetterStore finds the newest dead letters however large they are, within the last MiB", async () => {
  const dataDir = await Deno.makeTempDir();
  const tracker = createTracker({ backends: { caliper: { ENGINE: "async_routing" } } }, { dataDir });
  await Deno.mkdir(`${dataDir}/dead-letters`, { recursive: true });
  const letter = (id: string) =>
    JSON.stringify({
      id,
      name: "edx.x",
      timestamp: "2026-11-30T00:00:00.000Z",
      context: {},
      data: { blob: "x".repeat(40_000) },
      deadLetter: { error: "E", attempts: 5, backend: "sink", at: "2026-11-30T00:00:01.000Z" },
    });
  const ids = Array.from({ length: 30 }, (_, i) => `l${i}`); // about 1.2 MB in all
  await Deno.writeTextFile(`${dataDir}/dead-letters/caliper.jsonl`, ids.map(letter).join("\n") + "\n");
  const store = fileDeadLetterStore(tracker);
  const [branch] = await store.list(3);
  assert.equal(branch.count, 30);
  assert.deepEqual(branch.newest.map((entry) => entry.id), ["l29", "l28", "l27"]);
  // No more than the last MiB is looked at: the newest 30 are not all there.
  const [all] = await store.list(30);
  assert.ok(all.newest.length < 30 && all.newest.length >= 20, `${all.newest.length} listed`);
  assert.deepEqual(all.newest.slice(0, 2).map((entry) => entry.id), ["l29", "l28"]);
  await tracker.close();
  await Deno.remove(dataDir, { recursive: true });
});
