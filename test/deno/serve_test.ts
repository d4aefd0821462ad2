import assert from "node:assert/strict";
import type { InMemoryBackend } from "../../mod.ts";
import { startCollector } from "../../src/deno/mod.ts";
import { RecordingLogger } from "../_helpers.ts";
import { auth, runApiCases, TOKEN } from "../http/_api_cases.ts";
import { readJsonLines, startCollectorProcess } from "./_collector_process.ts";
import { MongoClient } from "mongodb";
import { startMongoServer, testDatabaseName } from "../_mongo_server.ts";

runApiCases("Deno server over loopback", async (limits) => {
  const dataDir = await Deno.makeTempDir();
  const collector = await startCollector({
    port: 0,
    hostname: "127.0.0.1",
    token: TOKEN,
    dataDir,
    limits,
    config: { backends: { sink: { ENGINE: "memory" } } },
    logger: new RecordingLogger(),
  });
  const sink = collector.tracker.getBackend("sink") as InMemoryBackend;
  return {
    request: (path, init) => fetch(`${collector.url}${path}`, init),
    events: () => sink.events,
    host: new URL(collector.url).host,
    close: async () => {
      await collector.shutdown();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
});

Deno.test("startCollector() on embedded defaults writes every accepted event to <dataDir>/events.jsonl by shutdown", async () => {
  const dataDir = await Deno.makeTempDir();
  const collector = await startCollector({ port: 0, hostname: "127.0.0.1", token: TOKEN, dataDir });
  const ids: string[] = [];
  await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const response = await fetch(`${collector.url}/v1/events`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ events: Array.from({ length: 50 }, (_, j) => ({ name: "load", data: { i, j } })) }),
    });
    assert.equal(response.status, 202);
    ids.push(...(await response.json()).ids);
  }));
  await collector.shutdown();
  const written = await readJsonLines(`${dataDir}/events.jsonl`);
  assert.equal(written.length, 1000);
  assert.deepEqual(new Set(written.map((e) => e.id)), new Set(ids));
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("GET /v1/bus/subscribe streams bus events whose names match the patterns over a WebSocket", async () => {
  const dataDir = await Deno.makeTempDir();
  const collector = await startCollector({ port: 0, hostname: "127.0.0.1", token: TOKEN, dataDir });
  const url = `${collector.url.replace("http", "ws")}/v1/bus/subscribe?pattern=${
    encodeURIComponent("edx\\.course\\.")
  }&pattern=problem_check$`;
  const socket = new WebSocket(url, { headers: auth });
  const received: string[] = [];
  const done = new Promise<void>((resolve, reject) => {
    socket.onmessage = (message) => {
      received.push(JSON.parse(message.data).name);
      if (received.length === 2) resolve();
    };
    socket.onerror = (error) => reject(error);
  });
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  const response = await fetch(`${collector.url}/v1/events`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({
      events: [{ name: "edx.ui.click" }, { name: "edx.course.enrollment.activated" }, { name: "problem_check" }, {
        name: "problem_checkX",
      }],
    }),
  });
  assert.equal(response.status, 202);
  await response.body?.cancel();
  await done;
  assert.deepEqual(received, ["edx.course.enrollment.activated", "problem_check"]);
  const closed = new Promise((resolve) => socket.onclose = resolve);
  socket.close();
  await closed;
  await collector.shutdown();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("GET /v1/bus/subscribe refuses a missing or invalid pattern with 400, no credentials with 401, no upgrade with 426", async () => {
  const dataDir = await Deno.makeTempDir();
  const collector = await startCollector({ port: 0, hostname: "127.0.0.1", token: TOKEN, dataDir });
  const upgrade = {
    ...auth,
    connection: "Upgrade",
    upgrade: "websocket",
    "sec-websocket-version": "13",
    "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
  };
  for (
    const [query, headers, status, code] of [
      ["", upgrade, 400, "invalid_pattern"],
      ["?pattern=(", upgrade, 400, "invalid_pattern"],
      ["?pattern=a", {}, 401, "unauthorized"],
      ["?pattern=a&topic=nope", upgrade, 404, "unknown_topic"],
      ["?pattern=a", auth, 426, "upgrade_required"],
    ] as const
  ) {
    const response = await fetch(`${collector.url}/v1/bus/subscribe${query}`, { headers });
    assert.equal(response.status, status);
    assert.equal((await response.json()).error, code);
  }
  await collector.shutdown();
  await Deno.remove(dataDir, { recursive: true });
});

async function postBatches(url: string, token: string, batches: number, name: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < batches; i++) {
    const response = await fetch(`${url}/v1/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify({ events: Array.from({ length: 100 }, (_, j) => ({ name, data: { i, j } })) }),
    });
    assert.equal(response.status, 202);
    ids.push(...(await response.json()).ids);
  }
  return ids;
}

Deno.test("deno task start: prints a development token, serves, and on SIGTERM writes everything before exiting 0", async () => {
  const dataDir = await Deno.makeTempDir();
  const collector = await startCollectorProcess({
    EVENT_TRACKING_DATA_DIR: dataDir,
    EVENT_TRACKING_TOKEN: "",
    MONGODB_URI: "",
  });
  const token = /development token (\S+)/.exec(collector.stderr())![1];
  const ids = await postBatches(collector.url, token, 5, "shutdown.test");
  Deno.kill(collector.pid, "SIGTERM");
  assert.equal((await collector.status).code, 0);
  const written = await readJsonLines(`${dataDir}/events.jsonl`);
  assert.deepEqual(new Set(written.map((e) => e.id)), new Set(ids));
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("deno task start with MONGODB_URI also stores every event in MongoDB, exactly once, by SIGINT", async () => {
  const mongo = await startMongoServer();
  const dataDir = await Deno.makeTempDir();
  const database = testDatabaseName();
  const uri = new URL(mongo.uri);
  uri.pathname = `/${database}`;
  const collector = await startCollectorProcess({
    EVENT_TRACKING_DATA_DIR: dataDir,
    EVENT_TRACKING_TOKEN: "mongo-token",
    MONGODB_URI: uri.href,
  });
  const ids = await postBatches(collector.url, "mongo-token", 3, "mongo.test");
  Deno.kill(collector.pid, "SIGINT");
  assert.equal((await collector.status).code, 0);
  const client = new MongoClient(mongo.uri);
  try {
    const stored = await client.db(database).collection("events").find({}, { projection: { id: 1 } }).toArray();
    assert.equal(stored.length, 300);
    assert.deepEqual(new Set(stored.map((d) => d.id)), new Set(ids));
    await client.db(database).dropDatabase();
  } finally {
    await client.close();
    await mongo.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("deno task replay feeds the dead letters of every async branch back and removes the file", async () => {
  const dataDir = await Deno.makeTempDir();
  await Deno.mkdir(`${dataDir}/dead-letters`);
  const letters = [1, 2, 3].map((i) => ({
    id: `0190b5a0-0000-7000-8000-00000000000${i}`,
    name: "replayed.event",
    timestamp: "2026-11-27T12:00:00.000Z",
    context: { user_id: i },
    data: { i },
    deadLetter: { error: "Error: disk full", attempts: 5, backend: "file", at: "2026-11-27T12:00:01.000Z" },
  }));
  await Deno.writeTextFile(
    `${dataDir}/dead-letters/tracking_logs.jsonl`,
    letters.map((l) => JSON.stringify(l)).join("\n") + "\n",
  );
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-sys",
      "src/deno/serve.ts",
      "replay",
    ],
    env: { EVENT_TRACKING_DATA_DIR: dataDir, MONGODB_URI: "", EVENT_TRACKING_CONFIG: "", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  assert.match(new TextDecoder().decode(output.stdout), /root\/tracking_logs: 3 dead letter\(s\) replayed/);
  const written = await readJsonLines(`${dataDir}/events.jsonl`);
  assert.deepEqual(written.map((e) => [e.id, e.context, e.data]), letters.map((l) => [l.id, l.context, l.data]));
  assert.ok(written.every((e) => !("deadLetter" in e)));
  await assert.rejects(Deno.stat(`${dataDir}/dead-letters/tracking_logs.jsonl`), Deno.errors.NotFound);
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("A client that goes away mid-request is counted in /v1/metrics, not logged as an internal error", async () => {
  const dataDir = await Deno.makeTempDir();
  const logger = new RecordingLogger();
  const collector = await startCollector({ port: 0, hostname: "127.0.0.1", token: TOKEN, dataDir, logger });
  const { hostname, port } = new URL(collector.url);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  const head = `POST /v1/events HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${TOKEN}\r\n` +
    `Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"events":[`;
  await connection.write(new TextEncoder().encode(head));
  await new Promise((resolve) => setTimeout(resolve, 100));
  connection.close();
  let text = "";
  for (let i = 0; i < 50 && !/client_disconnects_total 1/.test(text); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const metrics = await fetch(`${collector.url}/v1/metrics`, { headers: auth });
    text = await metrics.text();
  }
  assert.match(text, /^event_tracking_client_disconnects_total 1$/m);
  assert.deepEqual(logger.errors.map((e) => e.message), []);
  await collector.shutdown();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("GET /v1/bus/subscribe?topic= picks one event_bus branch: each event arrives once", async () => {
  const dataDir = await Deno.makeTempDir();
  const bus = { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"] } };
  const collector = await startCollector({
    port: 0,
    hostname: "127.0.0.1",
    token: TOKEN,
    dataDir,
    config: { backends: { first: bus, second: bus } },
  });
  const socket = new WebSocket(`${collector.url.replace("http", "ws")}/v1/bus/subscribe?topic=second&pattern=.*`, {
    headers: auth,
  });
  const received: string[] = [];
  socket.onmessage = (message) => received.push(JSON.parse(message.data).name);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  const response = await fetch(`${collector.url}/v1/events`, {
    method: "POST",
    headers: auth,
    body: JSON.stringify({ events: [{ name: "a" }, { name: "b" }, { name: "c" }] }),
  });
  assert.equal(response.status, 202);
  await response.body?.cancel();
  for (let i = 0; i < 100 && received.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(received, ["a", "b", "c"]);
  const closed = new Promise((resolve) => socket.onclose = resolve);
  socket.close();
  await closed;
  await collector.shutdown();
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("startCollector() on embedded defaults also writes the LMS's tracking log, Tutor-prefixed when asked", async () => {
  const dataDir = await Deno.makeTempDir();
  const collector = await startCollector({
    port: 0,
    hostname: "127.0.0.1",
    token: TOKEN,
    dataDir,
    trackingLogPrefix: "tutor",
  });
  const response = await fetch(`${collector.url}/v1/events`, {
    method: "POST",
    headers: { ...auth, "accept-language": "fr" },
    body: JSON.stringify({ name: "edx.ui.click", data: { x: "é" }, context: { user_id: 3, username: "ada" } }),
  });
  assert.equal(response.status, 202);
  const [id] = (await response.json() as { ids: string[] }).ids;
  await collector.shutdown();
  const lines = (await Deno.readTextFile(`${dataDir}/tracking.log`)).trimEnd().split("\n");
  assert.equal(lines.length, 1);
  // The form Aspects' Vector reads: Tutor's prefix, then the LMS's JSON (Python's json.dumps text).
  const match = /^.* \[tracking\] [^{}]* (\{.*\})$/.exec(lines[0]);
  assert.ok(match, lines[0]);
  const record = JSON.parse(match[1]);
  assert.equal(record.event_type, "edx.ui.click");
  assert.equal(record.username, "ada");
  assert.equal(record.accept_language, "fr");
  assert.equal(record.context.event_id, id);
  assert.match(match[1], /"event": \{"x": "\\u00e9"\}/);
  await Deno.remove(dataDir, { recursive: true });
});

Deno.test("deno task start reopens its log files on SIGHUP, after logrotate has moved them away", async () => {
  const dataDir = await Deno.makeTempDir();
  const collector = await startCollectorProcess({ EVENT_TRACKING_DATA_DIR: dataDir, EVENT_TRACKING_TOKEN: TOKEN });
  const post = async (name: string) => {
    const response = await fetch(`${collector.url.replace("0.0.0.0", "127.0.0.1")}/v1/events`, {
      method: "POST",
      headers: auth,
      body: JSON.stringify({ name }),
    });
    assert.equal(response.status, 202);
    await response.body?.cancel();
  };
  const lines = async (path: string) => (await Deno.readTextFile(path)).trimEnd().split("\n").filter(Boolean);
  await post("before.rotation");
  for (let i = 0; i < 100 && (await lines(`${dataDir}/tracking.log`).catch(() => [])).length < 1; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await Deno.rename(`${dataDir}/tracking.log`, `${dataDir}/tracking.log.1`);
  Deno.kill(collector.pid, "SIGHUP");
  for (let i = 0; i < 100 && !/SIGHUP: reopened/.test(collector.stderr()); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await post("after.rotation");
  Deno.kill(collector.pid, "SIGTERM");
  assert.equal((await collector.status).code, 0, collector.stderr());
  assert.match((await lines(`${dataDir}/tracking.log.1`))[0], /"event_type": "before\.rotation"/);
  const current = await lines(`${dataDir}/tracking.log`);
  assert.equal(current.length, 1);
  assert.match(current[0], /"event_type": "after\.rotation"/);
  await Deno.remove(dataDir, { recursive: true });
});
