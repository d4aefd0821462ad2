import assert from "node:assert/strict";
import {
  AsyncRoutingBackend,
  catalogMarkdown,
  createTracker,
  EventCatalog,
  ImproperlyConfigured,
  InMemoryBackend,
  RoutingBackend,
  SchemaProcessor,
  Tracker,
} from "@edx/event-tracking";
import { createCollectorApp } from "@edx/event-tracking/http";
import { loadCatalog } from "../src/deno/serve.ts";
import { writeEventDocs } from "../src/deno/docs_events.ts";

const PLAYED = {
  description: "A learner started a video.",
  version: "2",
  owner: "video team",
  schema: {
    type: "object",
    properties: {
      code: { type: "string", description: "The video's code." },
      duration: { type: "number" },
      user: { type: "object", properties: { id: { type: "integer" } }, required: ["id"] },
    },
    required: ["code", "user"],
  },
};

function catalog(): EventCatalog {
  return new EventCatalog().define("edx.video.played", PLAYED);
}

const nameOf = (events: readonly { name: string }[]) => events.map((e) => e.name);

Deno.test("a bad definition is ImproperlyConfigured naming the event", () => {
  const c = new EventCatalog();
  assert.throws(() => c.define("edx.a", { description: "", version: 1, schema: {} }), (error: unknown) => {
    assert.ok(error instanceof ImproperlyConfigured);
    assert.match(error.message, /event "edx\.a": description/);
    return true;
  });
  assert.throws(
    () => c.define("edx.b", { description: "B.", schema: {} } as never),
    /event "edx\.b": version must be/,
  );
  assert.throws(
    () => c.define("edx.c", { description: "C.", version: 1, schema: { properties: { x: { type: "strin" } } } }),
    /event "edx\.c": invalid JSON Schema: schema\.properties\.x\.type: unknown type "strin"/,
  );
  assert.throws(
    () => c.define("edx.d", { description: "D.", version: 1 } as never),
    /event "edx\.d": schema is required/,
  );
  assert.deepEqual(c.names(), []);
});

Deno.test("draft 7 and 2020-12 schemas validate", () => {
  const c = new EventCatalog()
    .define("d7", {
      description: "Draft 7.",
      version: 1,
      schema: { $schema: "http://json-schema.org/draft-07/schema#", type: "object", items: [{ type: "string" }] },
    })
    .define("d2020", {
      description: "2020-12.",
      version: 1,
      schema: { type: "array", prefixItems: [{ type: "string" }] },
    });
  assert.equal(c.validate("d7", {}).valid, true);
  assert.equal(c.validate("d2020", [1]).valid, false);
  assert.deepEqual(c.validate("d2020", [1]).errors.map((e) => e.field), ["data[0]"]);
});

Deno.test("two branches: only the validating one is affected; valid, invalid and unknown events", () => {
  const c = catalog();
  const strict = new InMemoryBackend();
  const plain = new InMemoryBackend();
  const tracker = new Tracker({
    catalog: c,
    backends: {
      strict: new RoutingBackend({
        backends: { strict },
        processors: [new SchemaProcessor({ onInvalid: "drop", unknown: "drop" })],
      }),
      plain: new RoutingBackend({ backends: { plain } }),
    },
  });
  assert.equal(tracker.catalog, c);
  tracker.emit("edx.video.played", { code: "a", user: { id: 1 } });
  tracker.emit("edx.video.played", { code: 1, user: { id: "x" } });
  tracker.emit("edx.ui.click", { x: 1 });
  assert.deepEqual(nameOf(strict.events), ["edx.video.played"]);
  assert.deepEqual(nameOf(plain.events), ["edx.video.played", "edx.video.played", "edx.ui.click"]);
  // Persisted with the events: the documented ones carry the version; the JSON line agrees.
  assert.equal(plain.events[0].context.event_type_version, "2");
  assert.equal(plain.events[1].context.event_type_version, "2");
  assert.equal("event_type_version" in plain.events[2].context, false);
  const line = (plain.events[0] as unknown as { toJSONString(): string }).toJSONString();
  assert.equal(line, JSON.stringify(plain.events[0]));
  // Observed once, though the processor saw the events too.
  assert.deepEqual({ ...c.stats("edx.video.played"), lastSeen: undefined }, {
    seen: 2,
    invalid: 1,
    lastSeen: undefined,
  });
  assert.equal(c.stats("edx.ui.click").seen, 1);
  assert.equal(tracker.metrics()["root/strict"].dropped, 2);
  assert.equal(tracker.metrics()["root/plain"].dropped, 0);
});

Deno.test("the version joins the scopes' context, which wins nothing over it", () => {
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ catalog: catalog(), backends: { sink } });
  tracker.context("edx.request", { user_id: 7, event_type_version: "stale" }, () => {
    tracker.emit("edx.video.played", { code: "a", user: { id: 1 } });
  });
  assert.deepEqual(sink.events[0].context, { user_id: 7, event_type_version: "2" });
  const line = (sink.events[0] as unknown as { toJSONString(): string }).toJSONString();
  assert.deepEqual(JSON.parse(line).context, { user_id: 7, event_type_version: "2" });
});

Deno.test("tag passes invalid events on with the failing fields in their context", () => {
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ backends: { sink }, processors: [new SchemaProcessor({ catalog: catalog() })] });
  tracker.emit("edx.video.played", { code: "a", user: {} });
  assert.deepEqual(sink.events[0].context.event_type_errors, [
    { field: "data.user.id", message: 'Instance does not have required property "id".' },
  ]);
});

Deno.test("dead_letter: an async branch dead-letters invalid events, naming the failing fields", async () => {
  const c = catalog();
  const delivered = new InMemoryBackend();
  const letters = new InMemoryBackend();
  const other = new InMemoryBackend();
  const tracker = new Tracker({
    catalog: c,
    backends: {
      xapi: new AsyncRoutingBackend({
        backendName: "xapi",
        backends: { delivered },
        deadLetter: letters,
        processors: [new SchemaProcessor({ onInvalid: "dead_letter" })],
      }),
      other,
    },
  });
  tracker.emit("edx.video.played", { code: "a", user: { id: 1 } });
  tracker.emit("edx.video.played", { code: "a", duration: "long", user: { id: 1.5 } });
  await tracker.close();
  assert.equal(delivered.events.length, 1);
  assert.equal(other.events.length, 2);
  assert.equal(letters.events.length, 1);
  const info = (letters.events[0] as unknown as { deadLetter: { error: string; backend: string; attempts: number } })
    .deadLetter;
  assert.equal(info.backend, "xapi");
  assert.equal(info.attempts, 0);
  assert.match(info.error, /data\.duration: Instance type "string" is invalid/);
  assert.match(info.error, /data\.user\.id: Instance type "number" is invalid/);
  assert.equal(tracker.metrics()["root/xapi"].deadLettered, 1);
});

Deno.test("without a tracker-level catalog, the processor observes what reaches it", () => {
  const c = catalog();
  const tracker = new Tracker({
    backends: {
      a: new RoutingBackend({
        backends: { s: new InMemoryBackend() },
        processors: [new SchemaProcessor({ catalog: c })],
      }),
    },
  });
  tracker.emit("edx.video.played", { code: 1, user: { id: 1 } });
  tracker.emit("x", { n: 1 });
  assert.equal(c.stats("edx.video.played").invalid, 1);
  assert.equal(c.stats("x").seen, 1);
});

Deno.test("inference from a stream: optional fields, mixed number types, nested objects, bounded", () => {
  const c = new EventCatalog({ maxFields: 3, maxNames: 2 });
  const samples = [
    { count: 1, user: { id: 1, name: "a" }, tags: ["x"], extra: null },
    { count: 2.5, user: { id: 2 }, tags: [] },
    { count: 3, user: { id: 3, name: "b" }, tags: ["y", 1], a: 1, b: 2 },
  ];
  for (const data of samples) c.observe({ name: "edx.inferred", data });
  assert.deepEqual(c.inferred("edx.inferred"), {
    type: "object",
    properties: {
      count: { type: "number" },
      user: { type: "object", properties: { id: { type: "integer" }, name: { type: "string" } }, required: ["id"] },
      tags: { type: "array", items: { type: ["integer", "string"] } },
    },
    required: ["count", "user", "tags"],
    additionalProperties: true,
  });
  c.observe({ name: "second", data: {} });
  c.observe({ name: "third", data: {} });
  assert.deepEqual(c.names(), ["edx.inferred", "second"]);
  assert.equal(c.untracked, 1);
  assert.equal(c.inferred("missing"), undefined);
});

Deno.test("JSON round trip, and fromJSON errors name the event", () => {
  const c = catalog().define("edx.ui.click", { description: "A click.", version: 1, schema: true, since: "Redwood" });
  const copy = EventCatalog.fromJSON(JSON.parse(JSON.stringify(c)));
  assert.deepEqual(copy.toJSON(), c.toJSON());
  assert.deepEqual(copy.describe("edx.video.played"), PLAYED);
  assert.throws(
    () =>
      EventCatalog.fromJSON({ events: { "edx.z": { description: "Z.", version: 1, schema: { type: 3 } } } }, "catalog"),
    {
      name: "ImproperlyConfigured",
      message: 'catalog.events["edx.z"].schema: event "edx.z": invalid JSON Schema: schema.type: unknown type 3',
    },
  );
  assert.throws(() => EventCatalog.fromJSON("{", "catalog"), /catalog: not JSON/);
});

Deno.test("config form: catalog beside backends, and the schema ENGINE", () => {
  const tracker = createTracker({
    catalog: { events: { "edx.video.played": PLAYED } },
    backends: {
      strict: {
        ENGINE: "routing",
        OPTIONS: {
          backends: { sink: { ENGINE: "memory" } },
          processors: [{ ENGINE: "schema", OPTIONS: { on_invalid: "drop", unknown: "allow" } }],
        },
      },
      all: { ENGINE: "memory" },
    },
  });
  tracker.emit("edx.video.played", { code: "a", user: { id: 1 } });
  tracker.emit("edx.video.played", {});
  const strict = (tracker.getBackend("strict") as RoutingBackend).backends.get("sink") as InMemoryBackend;
  assert.equal(strict.events.length, 1);
  assert.equal((tracker.getBackend("all") as InMemoryBackend).events.length, 2);
  assert.equal(tracker.catalog?.stats("edx.video.played").invalid, 1);
  assert.throws(
    () => createTracker({ processors: [{ ENGINE: "schema", OPTIONS: { on_invalid: "explode" } }] }),
    { message: 'processors[0].OPTIONS.on_invalid: must be "drop", "dead_letter" or "tag", got "explode"' },
  );
  assert.throws(
    () => createTracker({ catalog: { events: { "edx.q": { version: 1, schema: {} } } } as never }),
    /catalog\.events\["edx\.q"\]\.description: event "edx\.q": description/,
  );
});

Deno.test("collector: GET /v1/event-types answers 401 without the token, 200 with the catalog", async () => {
  const tracker = new Tracker({
    catalog: await loadCatalog(JSON.stringify({ events: { "edx.video.played": PLAYED } })),
  });
  const app = createCollectorApp({ tracker, token: "secret" });
  const headers = { authorization: "Bearer secret", "content-type": "application/json" };
  assert.equal((await app.request("/v1/event-types")).status, 401);
  assert.equal((await app.request("/v1/event-types", { headers: { authorization: "Bearer wrong" } })).status, 401);
  const posted = await app.request("/v1/events", {
    method: "POST",
    headers,
    body: JSON.stringify({
      events: [{ name: "edx.video.played", data: { code: "a", user: { id: 1 } } }, {
        name: "edx.ui.click",
        data: { x: 1 },
      }],
    }),
  });
  assert.equal(posted.status, 202, await posted.clone().text());
  const response = await app.request("/v1/event-types", { headers });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.deepEqual(body.eventTypes.map((t: { name: string; seen: number }) => [t.name, t.seen]), [
    ["edx.ui.click", 1],
    ["edx.video.played", 1],
  ]);
  assert.equal(body.eventTypes[1].version, "2");
  assert.deepEqual(body.eventTypes[1].schema, PLAYED.schema);
  assert.deepEqual(body.eventTypes[0].inferred, {
    type: "object",
    properties: { x: { type: "integer" } },
    required: ["x"],
  });
  await tracker.close();
});

Deno.test("Markdown: one section per event, fields table, an example; observed names with their inferred schema", async () => {
  const c = catalog();
  c.observe({ name: "edx.ui.click", data: { x: 1 } });
  const markdown = catalogMarkdown(c);
  assert.match(markdown, /^# Event types\n/);
  assert.match(markdown, /\| \[`edx\.video\.played`\]\(#edxvideoplayed\) \| 2 \| A learner started a video\. \|/);
  assert.match(markdown, /## `edx\.video\.played`\n\nA learner started a video\.\n\n- Version: `2`/);
  assert.match(markdown, /- Owner: video team/);
  assert.match(markdown, /\| `code` \| string \| yes \| The video's code\. \|/);
  assert.match(markdown, /\| `duration` \| number \| no \| {2}\|/);
  assert.match(markdown, /\| `user\.id` \| integer \| yes \| {2}\|/);
  const example = /Example `data`:\n\n```json\n([\s\S]*?)\n```/.exec(markdown)![1];
  assert.equal(c.validate("edx.video.played", JSON.parse(example)).valid, true);
  assert.match(markdown, /### `edx\.ui\.click`\n\nSeen 1 time\(s\)/);
  const dir = await Deno.makeTempDir();
  try {
    await writeEventDocs(JSON.stringify(c), `${dir}/docs/events.md`);
    assert.match(await Deno.readTextFile(`${dir}/docs/events.md`), /## `edx\.video\.played`/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
