import assert from "node:assert/strict";
import {
  DurableObjectBus,
  type DurableObjectStateLike,
  EventBusObject,
  type HibernatableWebSocket,
} from "@edx/event-tracking/cloudflare";
import type { TrackingEvent } from "@edx/event-tracking";
import { RecordingLogger } from "../_helpers.ts";

function event(name: string): TrackingEvent {
  return { id: name, name, timestamp: "", context: {}, data: {} };
}

/** A socket as the hibernation API hands it back: its attachment, and the frames sent to it. */
function socket(attachment: unknown) {
  const sent: string[] = [];
  const ws: HibernatableWebSocket = {
    send: (message) => void sent.push(message),
    close: () => {},
    serializeAttachment: () => {},
    deserializeAttachment: () => attachment,
  };
  return { ws, sent };
}

/** An object state holding sockets by tag, recording the auto-response it is given. */
function state(sockets: { tag: string; ws: HibernatableWebSocket }[]) {
  const autoResponses: unknown[] = [];
  const value: DurableObjectStateLike = {
    acceptWebSocket: () => {},
    getWebSockets: (tag) => sockets.filter((s) => tag === undefined || s.tag === tag).map((s) => s.ws),
    setWebSocketAutoResponse: (pair) => void autoResponses.push(pair),
  };
  return { value, autoResponses };
}

function publish(object: EventBusObject, topic: string, names: string[]): Promise<number> {
  return object.publish(topic, names.map((name) => JSON.stringify(event(name))));
}

Deno.test("EventBusObject sends an event only to the sockets subscribed to its topic", async () => {
  const logs = socket({ topic: "logs", patterns: [".*"] });
  const xapi = socket({ topic: "xapi", patterns: ["edx\\.course\\."] });
  // Tagged "logs" but subscribed elsewhere: the attachment decides too.
  const stray = socket({ topic: "other", patterns: [".*"] });
  const object = new EventBusObject(
    state([{ tag: "logs", ws: logs.ws }, { tag: "xapi", ws: xapi.ws }, { tag: "logs", ws: stray.ws }]).value,
    {},
  );
  assert.equal(await publish(object, "logs", ["edx.course.enrollment.activated", "edx.ui.click"]), 2);
  assert.equal(await publish(object, "xapi", ["edx.course.enrollment.activated", "edx.ui.click"]), 1);
  assert.deepEqual(logs.sent.map((line) => JSON.parse(line).name), ["edx.course.enrollment.activated", "edx.ui.click"]);
  assert.deepEqual(xapi.sent.map((line) => JSON.parse(line).name), ["edx.course.enrollment.activated"]);
  assert.deepEqual(stray.sent, []);

  await assert.rejects(publish(object, "", ["edx.ui.click"]), TypeError);
  await assert.rejects(object.publish("logs", "not lines" as unknown as string[]), TypeError);
  // Anything but a subscription is not a route of the object: publishing is RPC only.
  const post = await object.fetch(new Request("https://event-bus.internal/publish?topic=logs", { method: "POST" }));
  assert.equal(post.status, 404);
  // A subscription without the upgrade is checked all the same, so that a refused browser can learn why.
  const badPattern = await object.fetch(new Request("https://event-bus.internal/?topic=logs&pattern=edx.(course"));
  assert.equal(badPattern.status, 400);
  assert.match((await badPattern.json()).message, /^Cannot subscribe: .*edx\.\(course/);
  const noUpgrade = await object.fetch(new Request("https://event-bus.internal/?topic=logs&pattern=edx"));
  assert.equal(noUpgrade.status, 426);
  assert.equal((await noUpgrade.json()).error, "upgrade_required");
});

Deno.test("EventBusObject answers a subscriber's ping with pong, through the runtime's auto-response where it has one", () => {
  const { value, autoResponses } = state([]);
  new EventBusObject(value, {});
  // Outside workerd there is no WebSocketRequestResponsePair: the object answers itself.
  assert.deepEqual(autoResponses, []);
  const subscriber = socket({ topic: "logs", patterns: [".*"] });
  const object = new EventBusObject(value, {});
  object.webSocketMessage(subscriber.ws, "ping");
  object.webSocketMessage(subscriber.ws, "hello");
  assert.deepEqual(subscriber.sent, ["pong"]);

  const global = globalThis as { WebSocketRequestResponsePair?: unknown };
  global.WebSocketRequestResponsePair = class {
    constructor(readonly request: string, readonly response: string) {}
  };
  try {
    new EventBusObject(value, {});
    assert.deepEqual(autoResponses.map((pair) => ({ ...pair as object })), [{ request: "ping", response: "pong" }]);
  } finally {
    delete global.WebSocketRequestResponsePair;
  }
});

Deno.test("DurableObjectBus makes one RPC call per topic, naming it; connect() names the topic to subscribe to", async () => {
  const calls: [string, string[]][] = [];
  const connects: string[] = [];
  const namespace = {
    idFromName: (name: string) => name,
    get: () => ({
      fetch: (input: Request | string) => {
        connects.push(new Request(input).url);
        return Promise.resolve(new Response(null, { status: 204 }));
      },
      publish: (topic: string, lines: string[]) => {
        calls.push([topic, lines]);
        return Promise.resolve(lines.length);
      },
    }),
  };
  const bus = new DurableObjectBus({ namespace });
  const published = [bus.publish("a", event("1")), bus.publish("b", event("2")), bus.publish("a", event("3"))];
  await Promise.all(published);
  assert.deepEqual(
    calls.map(([topic, lines]) => [topic, lines.map((line) => JSON.parse(line).name)]),
    [["a", ["1", "3"]], ["b", ["2"]]],
  );
  await bus.connect(new Request("https://collector.test/v1/bus/subscribe?pattern=x&topic=ignored"), "a b");
  assert.deepEqual(connects, ["https://collector.test/v1/bus/subscribe?pattern=x&topic=a+b"]);
});

Deno.test("DurableObjectBus rejects the publishes of a failed RPC call, naming the topic and the cause", async () => {
  const namespace = {
    idFromName: (name: string) => name,
    get: () => ({
      fetch: () => Promise.resolve(new Response(null, { status: 204 })),
      publish: () => Promise.reject(new Error("Durable Object reset")),
    }),
  };
  const bus = new DurableObjectBus({ namespace });
  await assert.rejects(bus.publish("a", event("1"))!, /Cannot publish 1 event\(s\) on topic "a".*Durable Object reset/);
});

Deno.test("DurableObjectBus with awaitPublish false returns nothing, and logs and counts a failed request", async () => {
  const logger = new RecordingLogger();
  const namespace = {
    idFromName: (name: string) => name,
    get: () => ({
      fetch: () => Promise.resolve(new Response(null, { status: 204 })),
      publish: () => Promise.reject(new Error("overloaded")),
    }),
  };
  const bus = new DurableObjectBus({ namespace, awaitPublish: false, logger });
  assert.equal(bus.publish("a", event("1")), undefined);
  assert.equal(bus.publish("a", event("2")), undefined);
  await bus.flush();
  assert.equal(bus.failed, 2);
  assert.match(logger.errors[0].message, /2 event\(s\) on topic "a" were not published/);
  assert.match(String(logger.errors[0].detail), /overloaded/);
});
