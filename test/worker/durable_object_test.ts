import assert from "node:assert/strict";
import {
  DurableObjectBus,
  type DurableObjectStateLike,
  EventBusObject,
  type HibernatableWebSocket,
} from "@edx/event-tracking/durable-object";
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

function publish(object: EventBusObject, topic: string | undefined, names: string[]) {
  const query = topic === undefined ? "" : `?topic=${encodeURIComponent(topic)}`;
  return object.fetch(
    new Request(`https://event-bus.internal/publish${query}`, {
      method: "POST",
      body: names.map((name) => JSON.stringify(event(name))).join("\n"),
    }),
  );
}

Deno.test("EventBusObject sends an event only to the sockets subscribed to its topic", async () => {
  const logs = socket({ topic: "logs", patterns: [".*"] });
  const xapi = socket({ topic: "xapi", patterns: ["edx\\.course\\."] });
  // Tagged "logs" but subscribed elsewhere: the attachment decides too.
  const stray = socket({ topic: "other", patterns: [".*"] });
  const object = new EventBusObject(
    state([{ tag: "logs", ws: logs.ws }, { tag: "xapi", ws: xapi.ws }, { tag: "logs", ws: stray.ws }]).value,
  );
  const answer = await publish(object, "logs", ["edx.course.enrollment.activated", "edx.ui.click"]);
  assert.deepEqual(await answer.json(), { delivered: 2 });
  const again = await publish(object, "xapi", ["edx.course.enrollment.activated", "edx.ui.click"]);
  assert.deepEqual(await again.json(), { delivered: 1 });
  assert.deepEqual(logs.sent.map((line) => JSON.parse(line).name), ["edx.course.enrollment.activated", "edx.ui.click"]);
  assert.deepEqual(xapi.sent.map((line) => JSON.parse(line).name), ["edx.course.enrollment.activated"]);
  assert.deepEqual(stray.sent, []);

  const untitled = await publish(object, undefined, ["edx.ui.click"]);
  assert.equal(untitled.status, 400);
  assert.match((await untitled.json()).message, /'topic'/);
});

Deno.test("EventBusObject answers a subscriber's ping with pong, through the runtime's auto-response where it has one", () => {
  const { value, autoResponses } = state([]);
  new EventBusObject(value);
  // Outside workerd there is no WebSocketRequestResponsePair: the object answers itself.
  assert.deepEqual(autoResponses, []);
  const subscriber = socket({ topic: "logs", patterns: [".*"] });
  const object = new EventBusObject(value);
  object.webSocketMessage(subscriber.ws, "ping");
  object.webSocketMessage(subscriber.ws, "hello");
  assert.deepEqual(subscriber.sent, ["pong"]);

  const global = globalThis as { WebSocketRequestResponsePair?: unknown };
  global.WebSocketRequestResponsePair = class {
    constructor(readonly request: string, readonly response: string) {}
  };
  try {
    new EventBusObject(value);
    assert.deepEqual(autoResponses.map((pair) => ({ ...pair as object })), [{ request: "ping", response: "pong" }]);
  } finally {
    delete global.WebSocketRequestResponsePair;
  }
});

Deno.test("DurableObjectBus sends one request per topic, naming it; connect() names the topic to subscribe to", async () => {
  const requests: { url: string; body: string }[] = [];
  const namespace = {
    idFromName: (name: string) => name,
    get: () => ({
      fetch: async (input: Request | string, init?: RequestInit) => {
        const request = new Request(input, init);
        requests.push({ url: request.url, body: await request.text() });
        return new Response(null, { status: 204 });
      },
    }),
  };
  const bus = new DurableObjectBus({ namespace });
  const published = [bus.publish("a", event("1")), bus.publish("b", event("2")), bus.publish("a", event("3"))];
  await Promise.all(published);
  assert.deepEqual(
    requests.map(({ url, body }) => [url, body.split("\n").map((line) => JSON.parse(line).name)]),
    [
      ["https://event-bus.internal/publish?topic=a", ["1", "3"]],
      ["https://event-bus.internal/publish?topic=b", ["2"]],
    ],
  );
  await bus.connect(new Request("https://collector.test/v1/bus/subscribe?pattern=x&topic=ignored"), "a b");
  assert.equal(requests[2].url, "https://collector.test/v1/bus/subscribe?pattern=x&topic=a+b");
});

Deno.test("DurableObjectBus with awaitPublish false returns nothing, and logs and counts a failed request", async () => {
  const logger = new RecordingLogger();
  const namespace = {
    idFromName: (name: string) => name,
    get: () => ({ fetch: () => Promise.resolve(new Response("busy", { status: 503 })) }),
  };
  const bus = new DurableObjectBus({ namespace, awaitPublish: false, logger });
  assert.equal(bus.publish("a", event("1")), undefined);
  assert.equal(bus.publish("a", event("2")), undefined);
  await bus.flush();
  assert.equal(bus.failed, 2);
  assert.match(logger.errors[0].message, /2 event\(s\) on topic "a" were not published/);
  assert.match(String(logger.errors[0].detail), /answered 503/);
});
