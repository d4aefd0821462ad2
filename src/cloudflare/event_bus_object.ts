/**
 * A bus transport over a Cloudflare Durable Object: an
 * {@linkcode EventBusBackend} in a Worker publishes to the object on its
 * topic (an RPC call, `stub.publish(topic, lines)`), and the object fans each
 * event out to the WebSocket subscribers of that topic whose name patterns
 * match it (hibernation API; the object keeps no events).
 *
 * {@linkcode EventBusObject} extends the runtime's `DurableObject` class (of
 * `cloudflare:workers`, loaded only in workerd), so that its methods are
 * callable over RPC; elsewhere it extends a stand-in, and this module loads
 * (and is tested) anywhere. Only structural types of the Workers runtime are
 * used; the WebSocket side needs workerd.
 *
 * @module
 */

import { PendingSet } from "../_pending.ts";
import { consoleLogger, type DiagnosticLogger, typeName } from "../diagnostics.ts";
import { ImproperlyConfigured } from "../errors.ts";
import { serializeEvent, type TrackingEvent } from "../event.ts";
import { BUS_PROTOCOL, offersBusProtocol } from "../http/bus_ticket.ts";
import { RegexFilter } from "../processors/regex_filter.ts";
import type { BusHandler, BusTransport } from "../transports/transport.ts";

/**
 * A stub of {@linkcode EventBusObject} (`namespace.get(id)`): the part this
 * module uses. In workerd every public method of the object is callable on
 * its stub over RPC.
 */
export interface EventBusObjectStub {
  /** Sends a request to the object: a WebSocket upgrade, here. */
  fetch(input: Request | string, init?: RequestInit): Promise<Response>;
  /** Calls {@linkcode EventBusObject.publish} over RPC: resolves with how many frames were sent. */
  publish(topic: string, lines: string[]): Promise<number>;
}

/** A Durable Object namespace binding of {@linkcode EventBusObject} (`env.<binding>`): the part this module uses. */
export interface DurableObjectNamespaceLike {
  /** The id of the object of that name. */
  idFromName(name: string): unknown;
  /** The stub of the object of that id. */
  get(id: never): EventBusObjectStub;
}

/** A WebSocket accepted through the hibernation API: the part this module uses. */
export interface HibernatableWebSocket {
  /** Sends a text frame. */
  send(message: string): void;
  /** Closes the socket. */
  close(code?: number, reason?: string): void;
  /** Keeps a small value (at most 2,048 bytes serialised) with the socket across hibernation. */
  serializeAttachment(value: unknown): void;
  /** The value kept by `serializeAttachment`. */
  deserializeAttachment(): unknown;
}

/** A Durable Object's state (`ctx`): the part this module uses. */
export interface DurableObjectStateLike {
  /** Accepts a WebSocket so that the object may hibernate while it is open; `tags` (at most 10, 256 characters each) find it again. */
  acceptWebSocket(socket: HibernatableWebSocket, tags?: string[]): void;
  /** The accepted WebSockets that are open, or those with the tag. */
  getWebSockets(tag?: string): HibernatableWebSocket[];
  /** Answers a request frame with a response frame without waking the object (a `WebSocketRequestResponsePair`). */
  setWebSocketAutoResponse?(pair?: unknown): void;
}

/** The constructor of a Durable Object class: what {@linkcode DurableObjectBase} is. */
export interface DurableObjectConstructor {
  /** Called by the runtime with the object's state and the Worker's bindings. */
  new (ctx: DurableObjectStateLike, env: unknown): object;
}

const inWorkerd = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent === "Cloudflare-Workers";

/**
 * The base class of {@linkcode EventBusObject}: in workerd the runtime's
 * `DurableObject` (of `cloudflare:workers`), which makes the object's public
 * methods callable over RPC; in any other runtime a stand-in that keeps
 * `ctx` and `env`, so that this module loads (and the object can be tested)
 * there.
 */
export const DurableObjectBase: DurableObjectConstructor = inWorkerd
  ? ((await import("cloudflare:workers")) as unknown as { DurableObject: DurableObjectConstructor }).DurableObject
  : class DurableObject {
    /** The object's state. */
    readonly ctx: DurableObjectStateLike;
    /** The Worker's bindings. */
    readonly env: unknown;
    constructor(ctx: DurableObjectStateLike, env: unknown) {
      this.ctx = ctx;
      this.env = env;
    }
  };

/** The name of the one object all bus events go through. */
export const EVENT_BUS_OBJECT_NAME = "event-bus";
/**
 * The most bytes the subscription of one socket (its topic and patterns) may
 * take, as JSON (the attachment limit of the hibernation API).
 */
export const MAX_PATTERN_BYTES = 2_048;
/** The longest topic, in characters: the topic is the socket's tag, and tags are at most 256 characters. */
export const MAX_TOPIC_LENGTH = 256;
/** The most compiled pattern sets the object keeps; subscribers sharing a set share its filter. */
export const MAX_CACHED_FILTERS = 64;

/** The keep-alive a subscriber may send, and the object's answer. */
const PING = "ping";
const PONG = "pong";

/** Options of {@linkcode DurableObjectBus}. */
export interface DurableObjectBusOptions {
  /** The Durable Object namespace binding of {@linkcode EventBusObject}. */
  namespace: DurableObjectNamespaceLike;
  /** The object's name. @default "event-bus" */
  name?: string;
  /**
   * Whether `publish` returns the promise of its request, so that the
   * publishing branch's `send` settles with it. With `false` it returns
   * nothing: the request is awaited only by `flush()` (a Worker keeps it alive
   * with `waitUntil`), and a failed one is logged and counted in
   * {@linkcode DurableObjectBus.failed}; publishing then never holds up or
   * fails the event's other branches (the Worker's 202 waits for the Queue,
   * not for the bus). @default true
   */
  awaitPublish?: boolean;
  /** Where failed requests are reported when `awaitPublish` is false. @default consoleLogger */
  logger?: DiagnosticLogger;
}

/**
 * The producer side of the Durable Object bus. `publish` buffers the event
 * and sends the buffer of its topic to the object in one RPC call on a later
 * microtask (`stub.publish(topic, lines)`: one call per topic and emit loop,
 * not per event); the promise it returns settles with that call. All topics
 * go to one object, which sends each event to the subscribers of its topic
 * whose patterns match its name. `subscribe` throws: consumers are WebSocket
 * clients of the object, connected with {@linkcode DurableObjectBus.connect}.
 *
 * @example Publish through a fake namespace
 * ```ts
 * import { DurableObjectBus } from "@edx/event-tracking/cloudflare";
 * import { EventBusBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const calls: [string, string[]][] = [];
 * const namespace = {
 *   idFromName: (name: string) => name,
 *   get: () => ({
 *     fetch: () => Promise.resolve(new Response(null, { status: 204 })),
 *     publish: async (topic: string, lines: string[]) => (calls.push([topic, lines]), 0),
 *   }),
 * };
 * const bus = new EventBusBackend({
 *   transport: new DurableObjectBus({ namespace }),
 *   backendName: "enrollments",
 *   consume: false,
 *   eventBusTrackingLogs: ["a", "b"],
 * });
 * const tracker = new Tracker({ backends: { bus } });
 * tracker.emit("a");
 * tracker.emit("b");
 * await tracker.flush();
 * assert.equal(calls.length, 1);
 * assert.equal(calls[0][0], "enrollments");
 * assert.deepEqual(calls[0][1].map((line) => JSON.parse(line).name), ["a", "b"]);
 * ```
 */
export class DurableObjectBus implements BusTransport {
  readonly #namespace: DurableObjectNamespaceLike;
  readonly #name: string;
  // The events of each topic waiting for the next call to the object, and that call.
  readonly #batches = new Map<string, { readonly lines: string[]; readonly sent: Promise<void> }>();
  readonly #pending = new PendingSet();
  readonly #awaitPublish: boolean;
  readonly #logger: DiagnosticLogger;
  #failed = 0;

  /**
   * Creates the bus; it does no I/O.
   *
   * @throws {TypeError} If `namespace` is not a Durable Object namespace binding.
   */
  constructor(options: DurableObjectBusOptions) {
    if (typeof options?.namespace?.idFromName !== "function" || typeof options.namespace.get !== "function") {
      throw new TypeError(
        `Cannot create DurableObjectBus: 'namespace' must be a Durable Object namespace binding, got ${
          typeName(options?.namespace)
        }`,
      );
    }
    this.#namespace = options.namespace;
    this.#name = options.name ?? EVENT_BUS_OBJECT_NAME;
    this.#awaitPublish = options.awaitPublish ?? true;
    this.#logger = options.logger ?? consoleLogger;
  }

  /** Events whose call to the object failed, when `awaitPublish` is false (otherwise the publishing branch counts them). */
  get failed(): number {
    return this.#failed;
  }

  /**
   * Queues the event for the next call of its topic to the object.
   *
   * @returns A promise that resolves when the object has fanned the event out, and rejects if the call failed;
   *   nothing when `awaitPublish` is false.
   */
  publish(topic: string, event: TrackingEvent): Promise<void> | undefined {
    let batch = this.#batches.get(topic);
    if (batch === undefined) {
      const lines: string[] = [];
      const sent = Promise.resolve().then(() => this.#send(topic, lines));
      if (!this.#awaitPublish) {
        sent.catch((error) => {
          this.#failed += lines.length;
          this.#logger.error(
            `DurableObjectBus: ${lines.length} event(s) on topic "${topic}" were not published`,
            error,
          );
        });
      }
      batch = { lines, sent };
      this.#batches.set(topic, batch);
      this.#pending.add(sent);
    }
    batch.lines.push(serializeEvent(event));
    return this.#awaitPublish ? batch.sent : undefined;
  }

  /**
   * Not available: bus consumers are WebSocket clients of the object.
   *
   * @throws {Error} Always.
   */
  subscribe(topic: string, _handler: BusHandler): () => void {
    throw new Error(
      `Cannot subscribe to "${topic}" on DurableObjectBus: consumers connect to the object over a WebSocket (GET /v1/bus/subscribe); give EventBusBackend 'consume: false'`,
    );
  }

  /**
   * Forwards a WebSocket upgrade request (`GET …?pattern=…`, the pattern
   * repeatable) to the object, which answers it. With `topic`, the request
   * subscribes to that topic (its `topic` query parameter is set to it);
   * without, the request must name its topic.
   */
  connect(request: Request, topic?: string): Promise<Response> {
    if (topic !== undefined) {
      const url = new URL(request.url);
      url.searchParams.set("topic", topic);
      request = new Request(url, request);
    }
    return this.#stub().fetch(request);
  }

  /** Resolves when every published event has reached the object. */
  flush(): Promise<void> {
    return this.#pending.settled();
  }

  /** Flushes. */
  close(): Promise<void> {
    return this.flush();
  }

  #stub(): EventBusObjectStub {
    return this.#namespace.get(this.#namespace.idFromName(this.#name) as never);
  }

  async #send(topic: string, lines: string[]): Promise<void> {
    // Later events of the topic go in the next call.
    this.#batches.delete(topic);
    try {
      await this.#stub().publish(topic, lines);
    } catch (error) {
      throw new Error(
        `Cannot publish ${lines.length} event(s) on topic "${topic}" to the event bus object: ${
          error instanceof Error ? error.message : String(error)
        }`,
        { cause: error },
      );
    }
  }
}

/** What a socket keeps as its attachment: what it subscribed to. */
interface Subscription {
  readonly topic: string;
  readonly patterns: string[];
}

/**
 * The Durable Object that fans bus events out to WebSocket subscribers
 * (export it from the Worker and bind it; see worker/wrangler.toml). It
 * extends the runtime's `DurableObject`, so {@linkcode DurableObjectBus}
 * calls {@linkcode EventBusObject.publish} on its stub over RPC.
 *
 * - `fetch`: a WebSocket upgrade request with a `topic` and `pattern` query
 *   parameters (Python regular expressions, matched at the start of the event
 *   name) subscribes to that topic; the socket is accepted through the
 *   hibernation API, tagged with its topic, with `{ topic, patterns }` as its
 *   attachment. When the request's `Sec-WebSocket-Protocol` offers
 *   `event-tracking` (a browser's, beside its ticket), the answer selects it.
 *   No topic, a topic over 256 characters, no pattern, a subscription over
 *   2,048 bytes, or a pattern {@linkcode RegexFilter} refuses answer 400; any
 *   other request 404.
 * - `publish(topic, lines)` (RPC) sends each event, as its JSON line, to every
 *   socket subscribed to that topic with a matching pattern (decided by
 *   {@linkcode RegexFilter.matches}), and returns how many frames it sent.
 * - A subscriber's text frame `ping` is answered `pong` (by the runtime,
 *   without waking the object, where it has `setWebSocketAutoResponse`);
 *   anything else a subscriber sends is ignored.
 *
 * The object holds no events and no per-socket state beyond the attachments;
 * compiled filters are cached per pattern set, at most 64.
 *
 * @example Fan events out to the sockets of a topic (a stand-in state; in a Worker, export the class and bind it)
 * ```ts
 * import { type DurableObjectStateLike, EventBusObject, type HibernatableWebSocket } from "@edx/event-tracking/cloudflare";
 * import assert from "node:assert/strict";
 *
 * const frames: string[] = [];
 * const socket: HibernatableWebSocket = {
 *   send: (frame) => void frames.push(frame),
 *   close() {},
 *   serializeAttachment() {},
 *   deserializeAttachment: () => ({ topic: "enrollments", patterns: ["edx\\.course\\.enrollment\\."] }),
 * };
 * const state: DurableObjectStateLike = { acceptWebSocket() {}, getWebSockets: (tag) => tag === "enrollments" ? [socket] : [] };
 * const object = new EventBusObject(state, {});
 * const line = (name: string) => JSON.stringify({ id: name, name, timestamp: "", context: {}, data: {} });
 * assert.equal(await object.publish("enrollments", [line("edx.course.enrollment.activated"), line("edx.ui.click")]), 1);
 * assert.equal(JSON.parse(frames[0]).name, "edx.course.enrollment.activated");
 * ```
 */
export class EventBusObject extends DurableObjectBase {
  readonly #state: DurableObjectStateLike;
  readonly #filters = new Map<string, RegexFilter>();

  /** Called by the runtime with the object's state; sets the `ping` → `pong` auto-response where the runtime has it. */
  constructor(state: DurableObjectStateLike, env: unknown) {
    super(state, env);
    this.#state = state;
    const { WebSocketRequestResponsePair } = globalThis as unknown as {
      WebSocketRequestResponsePair?: new (request: string, response: string) => unknown;
    };
    if (typeof state.setWebSocketAutoResponse === "function" && typeof WebSocketRequestResponsePair === "function") {
      state.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING, PONG));
    }
  }

  /**
   * Handles a subscription (a `GET` that upgrades to a WebSocket; one that
   * does not upgrade is checked all the same, then answered 426); anything
   * else answers 404.
   */
  async fetch(request: Request): Promise<Response> {
    // A GET without the upgrade is checked too: a browser whose handshake was refused asks it for the reason.
    if (request.method === "GET") return this.#subscribe(request);
    await request.body?.cancel();
    return Response.json({ error: "not_found", message: "The event bus object has no such route" }, { status: 404 });
  }

  /**
   * Sends each event (one JSON line per event) to the sockets subscribed to
   * `topic` whose patterns match its name; called over RPC by
   * {@linkcode DurableObjectBus}.
   *
   * @returns How many frames were sent.
   * @throws {TypeError} If `topic` is not a non-empty string or `lines` not an array of strings.
   */
  // deno-lint-ignore require-await
  async publish(topic: string, lines: readonly string[]): Promise<number> {
    if (typeof topic !== "string" || topic === "") {
      throw new TypeError("Cannot publish: the topic must be a non-empty string");
    }
    if (!Array.isArray(lines) || !lines.every((line) => typeof line === "string")) {
      throw new TypeError("Cannot publish: 'lines' must be an array of event JSON lines");
    }
    return this.#fanOut(topic, lines);
  }

  /** Subscribers only listen: a `ping` is answered `pong` (where the runtime does not), anything else is ignored. */
  webSocketMessage(socket: HibernatableWebSocket, message: string | ArrayBuffer): void {
    if (message !== PING) return;
    try {
      socket.send(PONG);
    } catch {
      // The socket is closing.
    }
  }

  /** Completes the closing handshake a subscriber started. */
  webSocketClose(socket: HibernatableWebSocket, code: number, reason: string): void {
    try {
      // 1005 and 1006 are reported, never sent.
      socket.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // Already closed.
    }
  }

  #subscribe(request: Request): Response {
    const query = new URL(request.url).searchParams;
    const topic = query.get("topic");
    if (!topic) return badRequest("Cannot subscribe: give the 'topic' query parameter");
    if (topic.length > MAX_TOPIC_LENGTH) {
      return badRequest(`Cannot subscribe: the topic is over ${MAX_TOPIC_LENGTH} characters`);
    }
    const patterns = [...new Set(query.getAll("pattern"))];
    if (patterns.length === 0) {
      return badRequest("Cannot subscribe: give at least one 'pattern' query parameter");
    }
    const subscription: Subscription = { topic, patterns };
    const bytes = new TextEncoder().encode(JSON.stringify(subscription)).length;
    if (bytes > MAX_PATTERN_BYTES) {
      return badRequest(
        `Cannot subscribe: the topic and patterns take ${bytes} bytes, over the limit of ${MAX_PATTERN_BYTES}`,
      );
    }
    try {
      this.#filter(patterns);
    } catch (error) {
      if (error instanceof ImproperlyConfigured) return badRequest(`Cannot subscribe: ${error.message}`);
      throw error;
    }
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json(
        { error: "upgrade_required", message: "GET /v1/bus/subscribe opens a WebSocket: send Upgrade: websocket" },
        { status: 426 },
      );
    }
    const { WebSocketPair } = globalThis as unknown as {
      WebSocketPair: new () => { 0: HibernatableWebSocket; 1: HibernatableWebSocket };
    };
    const pair = new WebSocketPair();
    this.#state.acceptWebSocket(pair[1], [topic]);
    pair[1].serializeAttachment(subscription);
    // A browser fails a handshake that selects none of the subprotocols it offered: select the bus's own
    // (never another entry, such as the `ticket.<jwt>` that authenticated the request).
    const headers = offersBusProtocol(request.headers.get("sec-websocket-protocol"))
      ? { "sec-websocket-protocol": BUS_PROTOCOL }
      : undefined;
    return new Response(null, { status: 101, webSocket: pair[0], headers } as ResponseInit);
  }

  #fanOut(topic: string, lines: readonly string[]): number {
    const sockets = this.#state.getWebSockets(topic);
    let delivered = 0;
    for (const line of lines) {
      if (line === "") continue;
      const name = (JSON.parse(line) as { name?: unknown }).name;
      if (typeof name !== "string") continue;
      for (const socket of sockets) {
        const subscription = socket.deserializeAttachment() as Subscription | null;
        if (subscription?.topic !== topic || !this.#filter(subscription.patterns).matches(name)) continue;
        try {
          socket.send(line);
          delivered++;
        } catch {
          // The socket is closing; the runtime drops it.
        }
      }
    }
    return delivered;
  }

  #filter(patterns: string[]): RegexFilter {
    const key = JSON.stringify(patterns);
    let filter = this.#filters.get(key);
    if (filter === undefined) {
      filter = new RegexFilter({ filterType: "allowlist", regularExpressions: patterns });
      if (this.#filters.size >= MAX_CACHED_FILTERS) this.#filters.delete(this.#filters.keys().next().value!);
      this.#filters.set(key, filter);
    }
    return filter;
  }
}

function badRequest(message: string): Response {
  return Response.json({ error: "bad_request", message }, { status: 400 });
}
