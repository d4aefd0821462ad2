import assert from "node:assert/strict";
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import {
  createTracker,
  DROP,
  ImproperlyConfigured,
  InMemoryBackend,
  type RedactOptions,
  RedactProcessor,
  RoutingBackend,
  serializeEvent,
  Tracker,
  type TrackingEvent,
} from "@edx/event-tracking";

const KEY = "0123456789abcdef0123456789abcdef";

/** HMAC-SHA256 through WebCrypto: an implementation independent of the processor's. */
async function webHmac(key: string, value: string): Promise<string> {
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(key),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", cryptoKey, new TextEncoder().encode(value));
  return [...new Uint8Array(mac)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A frozen event as the tracker makes it. */
function emitted(context: Record<string, unknown>, data: Record<string, unknown>, name = "edx.test"): TrackingEvent {
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ backends: { sink } });
  tracker.withContext("edx.request", context).emit(name, data);
  return sink.events[0];
}

function run(processor: RedactProcessor, event: TrackingEvent): TrackingEvent {
  const result = processor.process(event);
  assert.ok(result !== undefined && result !== DROP, "the processor returned a new event");
  return result as TrackingEvent;
}

Deno.test("RedactProcessor removes fields and pseudonymizes others with HMAC-SHA256 in lowercase hex", async () => {
  const processor = new RedactProcessor({
    remove: ["context.ip", "context.username", "data.email", "data.user.address.postal_code"],
    pseudonymize: ["context.user_id", "data.user.name", "context.session"],
    key: KEY,
  });
  const event = emitted(
    { user_id: "ada", username: "ada", ip: "10.0.0.1", course_id: "course-v1:X+Y+Z", session: "s3cr3t" },
    { email: "ada@example.com", user: { name: "Ada", address: { postal_code: "90210", country: "US" } }, n: 1 },
  );
  const redacted = run(processor, event);
  assert.equal(redacted.id, event.id);
  assert.equal(redacted.name, event.name);
  assert.equal(redacted.timestamp, event.timestamp);
  assert.deepEqual(redacted.context, {
    user_id: await webHmac(KEY, "ada"),
    course_id: "course-v1:X+Y+Z",
    session: await webHmac(KEY, "s3cr3t"),
  });
  assert.deepEqual(redacted.data, {
    user: { name: await webHmac(KEY, "Ada"), address: { country: "US" } },
    n: 1,
  });
  assert.match(redacted.context.user_id as string, /^[0-9a-f]{64}$/);
  // Key order is kept, and the JSON a logger writes is the event's.
  assert.deepEqual(Object.keys(redacted.context), ["user_id", "course_id", "session"]);
  assert.equal(serializeEvent(redacted), JSON.stringify(redacted));
});

Deno.test("RedactProcessor pseudonyms are stable, keyed, and match a known HMAC-SHA256", () => {
  const a = new RedactProcessor({ pseudonymize: ["context.user_id"], key: KEY });
  const b = new RedactProcessor({ pseudonymize: ["context.user_id"], key: "another key" });
  const first = run(a, emitted({ user_id: "learner-1" }, {}));
  const again = run(a, emitted({ user_id: "learner-1" }, {}));
  const other = run(a, emitted({ user_id: "learner-2" }, {}));
  const otherKey = run(b, emitted({ user_id: "learner-1" }, {}));
  assert.equal(first.context.user_id, again.context.user_id);
  assert.notEqual(first.context.user_id, other.context.user_id);
  assert.notEqual(first.context.user_id, otherKey.context.user_id);
  // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
  const rfc = new RedactProcessor({ pseudonymize: ["data.text"], key: "Jefe" });
  assert.deepEqual(run(rfc, emitted({}, { text: "what do ya want for nothing?" })).data, {
    text: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  });
});

Deno.test("RedactProcessor: numbers and booleans are hashed as their text, null kept, containers leaf by leaf", () => {
  const processor = new RedactProcessor({
    pseudonymize: ["context.user_id", "data.flag", "data.none", "data.profile", "data.list"],
    key: KEY,
  });
  const hash = (text: string) => bytesToHex(hmac(sha256, utf8ToBytes(KEY), utf8ToBytes(text)));
  const redacted = run(
    processor,
    emitted({ user_id: 10938 }, {
      flag: true,
      none: null,
      profile: { email: "ada@example.com", age: 36, tags: ["a", null] },
      list: ["x", 2],
    }),
  );
  // A numeric user_id (Open edX's) gets the pseudonym of its text: the same as the string "10938".
  assert.equal(redacted.context.user_id, hash("10938"));
  assert.deepEqual(redacted.data, {
    flag: hash("true"),
    none: null,
    profile: { email: hash("ada@example.com"), age: hash("36"), tags: [hash("a"), null] },
    list: [hash("x"), hash("2")],
  });
});

Deno.test("RedactProcessor keeps the event when no path is present, and skips paths through non-objects", () => {
  const processor = new RedactProcessor({
    remove: ["context.ip", "data.user.email"],
    pseudonymize: ["data.items.name"],
    key: KEY,
  });
  assert.equal(
    processor.process(emitted({ user_id: 1 }, { user: "not an object", items: [{ name: "a" }] })),
    undefined,
  );
  assert.equal(processor.process(emitted({}, {})), undefined);
  // An inherited property is not a field of the event.
  assert.equal(new RedactProcessor({ remove: ["data.toString"] }).process(emitted({}, { a: 1 })), undefined);
  // Removing every key leaves an empty object.
  const removed = run(new RedactProcessor({ remove: ["data.a"] }), emitted({}, { a: 1 }));
  assert.deepEqual(removed.data, {});
  assert.equal(new RedactProcessor({}).process(emitted({ ip: "1" }, {})), undefined);
});

Deno.test("RedactProcessor: remove wins over a pseudonymize above it, and below it is applied first", () => {
  const processor = new RedactProcessor({
    remove: ["data.user.ssn", "data.extra"],
    pseudonymize: ["data.user", "data.extra.x"],
    key: KEY,
  });
  const redacted = run(processor, emitted({}, { user: { name: "Ada", ssn: "123" }, extra: { x: "1" }, keep: 1 }));
  assert.deepEqual(Object.keys(redacted.data as object), ["user", "keep"]);
  assert.deepEqual(Object.keys((redacted.data as { user: object }).user), ["name"]);
  const hash = (text: string) => bytesToHex(hmac(sha256, utf8ToBytes(KEY), utf8ToBytes(text)));
  assert.deepEqual((redacted.data as { user: object }).user, { name: hash("Ada") });
  // A path below one that is pseudonymized is hashed once, not twice.
  const nested = new RedactProcessor({ pseudonymize: ["data.user", "data.user.name"], key: KEY });
  assert.deepEqual(run(nested, emitted({}, { user: { name: "Ada", id: 7 } })).data, {
    user: { name: hash("Ada"), id: hash("7") },
  });
});

Deno.test("RedactProcessor returns a new frozen event: the original and its sibling branch are untouched", () => {
  const log = new InMemoryBackend();
  const analytics = new InMemoryBackend();
  const tracker = new Tracker({
    backends: {
      analytics: new RoutingBackend({
        processors: [new RedactProcessor({ remove: ["context.ip"], pseudonymize: ["context.username"], key: KEY })],
        backends: { sink: analytics },
      }),
      tracking_logs: log,
    },
  });
  tracker.context("edx.request", { user_id: 1, username: "ada", ip: "10.0.0.1" }, () => {
    tracker.emit("edx.course.enrollment.activated", { course_id: "c" });
  });
  const original = log.events[0];
  const redacted = analytics.events[0];
  assert.notEqual(redacted, original);
  assert.deepEqual(original.context, { user_id: 1, username: "ada", ip: "10.0.0.1" });
  assert.equal(JSON.parse(serializeEvent(original)).context.ip, "10.0.0.1");
  assert.deepEqual(Object.keys(redacted.context), ["user_id", "username"]);
  assert.match(redacted.context.username as string, /^[0-9a-f]{64}$/);
  assert.ok(Object.isFrozen(redacted));
  assert.ok(Object.isFrozen(redacted.context));
  assert.ok(Object.isFrozen(redacted.data));
  assert.equal(redacted.id, original.id);
  assert.deepEqual(redacted.data, original.data);
  assert.throws(() => {
    (redacted.context as Record<string, unknown>).ip = "x";
  }, TypeError);
});

Deno.test("RedactProcessor handles keys named __proto__ as plain keys", () => {
  const processor = new RedactProcessor({ remove: ["data.__proto__"], pseudonymize: ["data.x.__proto__"], key: KEY });
  const event = emitted({}, JSON.parse('{"__proto__": {"polluted": true}, "x": {"__proto__": "v"}, "y": 1}'));
  const redacted = run(processor, event);
  assert.equal(Object.hasOwn(redacted.data as object, "__proto__"), false);
  assert.equal(Object.getPrototypeOf((redacted.data as { x: object }).x), Object.prototype);
  assert.match(
    Object.getOwnPropertyDescriptor((redacted.data as { x: object }).x, "__proto__")!.value,
    /^[0-9a-f]{64}$/,
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("RedactProcessor fails closed: an event it cannot rebuild is dropped, not passed on unredacted", () => {
  const processor = new RedactProcessor({ remove: ["context.ip"] });
  const broken = {
    id: 1,
    name: "x",
    timestamp: "t",
    context: { ip: "10.0.0.1" },
    data: {},
  } as unknown as TrackingEvent;
  assert.equal(processor.process(broken), DROP);
});

Deno.test("RedactProcessor() refuses bad paths and a missing key, naming the option, never showing the key", () => {
  const rule = 'must be a dotted path that starts at "context." or "data." (e.g. "context.ip")';
  const key = 'must be the secret key of "pseudonymize" (a non-empty string)';
  const cases: [unknown, string][] = [
    [{ remove: ["ip"] }, `RedactProcessor.remove[0]: ${rule}, got "ip"`],
    [{ remove: ["context.ip", "context"] }, `RedactProcessor.remove[1]: ${rule}, got "context"`],
    [{ remove: ["context..ip"] }, `RedactProcessor.remove[0]: ${rule}, got "context..ip"`],
    [{ remove: ["data.ip."] }, `RedactProcessor.remove[0]: ${rule}, got "data.ip."`],
    [{ remove: ["event.name"] }, `RedactProcessor.remove[0]: ${rule}, got "event.name"`],
    [{ pseudonymize: ["user_id"], key: KEY }, `RedactProcessor.pseudonymize[0]: ${rule}, got "user_id"`],
    [{ remove: [5] }, "RedactProcessor.remove[0]: must be a string, got 5"],
    [{ remove: "context.ip" }, 'RedactProcessor.remove: must be an array of dotted paths, got "context.ip"'],
    [{ pseudonymize: ["context.user_id"] }, `RedactProcessor.key: ${key} when "pseudonymize" is given, got undefined`],
    [{ pseudonymize: ["context.user_id"], key: "" }, `RedactProcessor.key: ${key}, got ""`],
    [{ pseudonymize: ["context.user_id"], key: 12345 }, `RedactProcessor.key: ${key}, got a number`],
    [
      { remove: ["context.ip"], pseudonymize: ["context.user_id", "context.ip"], key: KEY },
      'RedactProcessor.pseudonymize[1]: "context.ip" is also in "remove": give it once',
    ],
    [
      { remove: [], pseudonymise: [] },
      "RedactProcessor.pseudonymise: unknown option (expected: remove, pseudonymize, key)",
    ],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => new RedactProcessor(options as RedactOptions),
      (error: unknown) => error instanceof ImproperlyConfigured && error.message === message,
      message,
    );
  }
  // A path given twice in one list is one rule; a Set works too.
  const processor = new RedactProcessor({
    remove: new Set(["context.ip"]),
    pseudonymize: ["data.a", "data.a"],
    key: KEY,
  });
  assert.deepEqual(processor.remove, ["context.ip"]);
  assert.deepEqual(processor.pseudonymize, ["data.a"]);
});

Deno.test("createTracker: the redact ENGINE — tracking log with PII, analytics branch without", () => {
  const config = {
    backends: {
      tracking_logs: {
        ENGINE: "eventtracking.backends.routing.RoutingBackend",
        OPTIONS: { backends: { memory: { ENGINE: "memory" } } },
      },
      analytics: {
        ENGINE: "routing",
        OPTIONS: {
          processors: [{
            ENGINE: "redact",
            OPTIONS: {
              remove: ["context.ip", "context.username", "context.agent", "data.email"],
              pseudonymize: ["context.user_id"],
              key: KEY,
            },
          }],
          backends: { memory: { ENGINE: "memory" } },
        },
      },
    },
  };
  const tracker = createTracker(config);
  tracker.context("edx.request", { user_id: 10938, username: "ada", ip: "10.0.0.1", agent: "Mozilla" }, () => {
    tracker.emit("edx.course.enrollment.activated", { course_id: "c", email: "ada@example.com" });
  });
  const sink = (name: string) => (tracker.getBackend(name) as RoutingBackend).backends.get("memory") as InMemoryBackend;
  const raw = sink("tracking_logs").events[0];
  const clean = sink("analytics").events[0];
  assert.deepEqual(raw.context, { user_id: 10938, username: "ada", ip: "10.0.0.1", agent: "Mozilla" });
  assert.deepEqual(raw.data, { course_id: "c", email: "ada@example.com" });
  assert.deepEqual(Object.keys(clean.context), ["user_id"]);
  assert.equal(clean.context.user_id, bytesToHex(hmac(sha256, utf8ToBytes(KEY), utf8ToBytes("10938"))));
  assert.deepEqual(clean.data, { course_id: "c" });
});

Deno.test("createTracker: bad redact OPTIONS are reported by path", () => {
  const spec = (options: Record<string, unknown>) => ({
    backends: {
      analytics: {
        ENGINE: "routing",
        OPTIONS: { processors: [{ ENGINE: "redact", OPTIONS: options }], backends: { m: { ENGINE: "memory" } } },
      },
    },
  });
  const path = "backends.analytics.OPTIONS.processors[0].OPTIONS";
  const cases: [Record<string, unknown>, string][] = [
    [
      { remove: ["context.ip", "ip"] },
      `${path}.remove[1]: must be a dotted path that starts at "context." or "data." (e.g. "context.ip"), got "ip"`,
    ],
    [
      { pseudonymize: ["context.user_id"] },
      `${path}.key: must be the secret key of "pseudonymize" (a non-empty string) when "pseudonymize" is given, got undefined`,
    ],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => createTracker(spec(options)),
      (error: unknown) => error instanceof ImproperlyConfigured && error.message === message,
      message,
    );
  }
});
