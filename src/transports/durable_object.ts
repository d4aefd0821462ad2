/**
 * A bus transport over a Cloudflare Durable Object: an
 * {@linkcode EventBusBackend} in a Worker publishes to the object, and the
 * object fans each event out to its WebSocket subscribers whose name patterns
 * match it (hibernation API; the object keeps no events).
 *
 * Only structural types of the Workers runtime are used, so this module
 * loads (and is tested) anywhere; the WebSocket side needs workerd.
 *
 * @module
 */

import { typeName } from "../diagnostics.ts";
import { ImproperlyConfigured } from "../errors.ts";
import { serializeEvent, type TrackingEvent } from "../event.ts";
import { RegexFilter } from "../processors/regex_filter.ts";
import type { BusHandler, BusTransport } from "./transport.ts";

/** A Durable Object stub: the part this module uses. */
export interface DurableObjectStubLike {
  /** Sends a request to the object. */
  fetch(input: Request | string, init?: RequestInit): Promise<Response>;
}

/** A Durable Object namespace binding (`env.<binding>`): the part this module uses. */
export interface DurableObjectNamespaceLike {
  /** The id of the object of that name. */
  idFromName(name: string): unknown;
  /** The stub of the object of that id. */
  get(id: never): DurableObjectStubLike;
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
  /** Accepts a WebSocket so that the object may hibernate while it is open. */
  acceptWebSocket(socket: HibernatableWebSocket, tags?: string[]): void;
  /** The accepted WebSockets that are open. */
  getWebSockets(tag?: string): HibernatableWebSocket[];
}

/** The name of the one object all bus events go through. */
export const EVENT_BUS_OBJECT_NAME = "event-bus";
/** The most bytes the patterns of one subscriber may take, as JSON (the attachment limit of the hibernation API). */
export const MAX_PATTERN_BYTES = 2_048;
/** The most compiled pattern sets the object keeps; subscribers sharing a set share its filter. */
export const MAX_CACHED_FILTERS = 64;

const PUBLISH_URL = "https://event-bus.internal/publish";

/** Options of {@linkcode DurableObjectBus}. */
export interface DurableObjectBusOptions {
  /** The Durable Object namespace binding of {@linkcode EventBusObject}. */
  namespace: DurableObjectNamespaceLike;
  /** The object's name. @default "event-bus" */
  name?: string;
}

/**
 * The producer side of the Durable Object bus. `publish` buffers the event
 * and sends the buffer to the object in one request on a later microtask (one
 * request per emit loop, not per event); the promise it returns settles with
 * that request. All topics go to one object, whose subscribers choose events
 * by name. `subscribe` throws: consumers are WebSocket clients of the object,
 * connected with {@linkcode DurableObjectBus.connect}.
 *
 * @example Publish through a fake namespace
 * ```ts
 * import { DurableObjectBus } from "@edx/event-tracking/durable-object";
 * import { EventBusBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const bodies: string[] = [];
 * const namespace = {
 *   idFromName: (name: string) => name,
 *   get: () => ({
 *     fetch: async (_url: Request | string, init?: RequestInit) => {
 *       bodies.push(String(init?.body));
 *       return new Response(null, { status: 204 });
 *     },
 *   }),
 * };
 * const bus = new EventBusBackend({
 *   transport: new DurableObjectBus({ namespace }),
 *   consume: false,
 *   eventBusTrackingLogs: ["a", "b"],
 * });
 * const tracker = new Tracker({ backends: { bus } });
 * tracker.emit("a");
 * tracker.emit("b");
 * await tracker.flush();
 * assert.equal(bodies.length, 1);
 * assert.deepEqual(bodies[0].split("\n").map((line) => JSON.parse(line).name), ["a", "b"]);
 * ```
 */
export class DurableObjectBus implements BusTransport {
  readonly #namespace: DurableObjectNamespaceLike;
  readonly #name: string;
  #lines: string[] = [];
  #sent: Promise<void> | undefined;
  readonly #pending = new Set<Promise<void>>();

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
  }

  /**
   * Queues the event for the next request to the object.
   *
   * @returns A promise that resolves when the object has fanned the event out, and rejects if the request failed.
   */
  publish(_topic: string, event: TrackingEvent): Promise<void> {
    this.#lines.push(serializeEvent(event));
    if (this.#sent === undefined) {
      const sent = Promise.resolve().then(() => this.#send());
      this.#sent = sent;
      const pending = sent.then(undefined, () => {}).finally(() => this.#pending.delete(pending));
      this.#pending.add(pending);
    }
    return this.#sent;
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
   * repeatable) to the object, which answers it.
   */
  connect(request: Request): Promise<Response> {
    return this.#stub().fetch(request);
  }

  /** Resolves when every published event has been sent to the object. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Flushes. */
  close(): Promise<void> {
    return this.flush();
  }

  #stub(): DurableObjectStubLike {
    return this.#namespace.get(this.#namespace.idFromName(this.#name) as never);
  }

  async #send(): Promise<void> {
    const lines = this.#lines;
    this.#lines = [];
    this.#sent = undefined;
    const response = await this.#stub().fetch(PUBLISH_URL, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: lines.join("\n"),
    });
    await response.body?.cancel();
    if (!response.ok) {
      throw new Error(
        `Cannot publish ${lines.length} event(s) to the event bus object: it answered ${response.status}`,
      );
    }
  }
}

interface Subscription {
  readonly patterns: string[];
}

/**
 * The Durable Object that fans bus events out to WebSocket subscribers
 * (export it from the Worker and bind it; see worker/wrangler.toml).
 *
 * - A WebSocket upgrade request with `pattern` query parameters (Python
 *   regular expressions, matched at the start of the event name) subscribes;
 *   the socket is accepted through the hibernation API with its patterns as
 *   its attachment. No pattern, patterns over 2,048 bytes, or a pattern
 *   {@linkcode RegexFilter} refuses answer 400.
 * - `POST /publish` with one event JSON per line sends each event, as its
 *   JSON line, to every socket with a matching pattern (decided by
 *   {@linkcode RegexFilter.matches}), and answers `{ "delivered": n }`.
 *
 * The object holds no events and no per-socket state beyond the attachments;
 * compiled filters are cached per pattern set, at most 64.
 *
 * @example Export it from a Worker
 * ```ts ignore
 * import { EventBusObject } from "@edx/event-tracking/durable-object";
 * export { EventBusObject };
 * ```
 */
export class EventBusObject {
  readonly #state: DurableObjectStateLike;
  readonly #filters = new Map<string, RegexFilter>();

  /** Called by the runtime with the object's state. */
  constructor(state: DurableObjectStateLike, _env?: unknown) {
    this.#state = state;
  }

  /** Handles a subscription (WebSocket upgrade) or a publication (`POST /publish`). */
  async fetch(request: Request): Promise<Response> {
    if (request.headers.get("upgrade")?.toLowerCase() === "websocket") return this.#subscribe(request);
    if (request.method === "POST" && new URL(request.url).pathname === "/publish") {
      return Response.json({ delivered: this.#fanOut(await request.text()) });
    }
    return Response.json({ error: "not_found", message: "The event bus object has no such route" }, { status: 404 });
  }

  /** Subscribers only listen: what they send (a keep-alive, say) is ignored. */
  webSocketMessage(_socket: HibernatableWebSocket, _message: string | ArrayBuffer): void {}

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
    const patterns = [...new Set(new URL(request.url).searchParams.getAll("pattern"))];
    if (patterns.length === 0) {
      return badRequest("Cannot subscribe: give at least one 'pattern' query parameter");
    }
    const subscription: Subscription = { patterns };
    const bytes = new TextEncoder().encode(JSON.stringify(subscription)).length;
    if (bytes > MAX_PATTERN_BYTES) {
      return badRequest(`Cannot subscribe: the patterns take ${bytes} bytes, over the limit of ${MAX_PATTERN_BYTES}`);
    }
    try {
      this.#filter(patterns);
    } catch (error) {
      if (error instanceof ImproperlyConfigured) return badRequest(`Cannot subscribe: ${error.message}`);
      throw error;
    }
    const { WebSocketPair } = globalThis as unknown as {
      WebSocketPair: new () => { 0: HibernatableWebSocket; 1: HibernatableWebSocket };
    };
    const pair = new WebSocketPair();
    this.#state.acceptWebSocket(pair[1]);
    pair[1].serializeAttachment(subscription);
    return new Response(null, { status: 101, webSocket: pair[0] } as ResponseInit);
  }

  #fanOut(body: string): number {
    const sockets = this.#state.getWebSockets();
    let delivered = 0;
    for (const line of body.split("\n")) {
      if (line === "") continue;
      const name = (JSON.parse(line) as { name?: unknown }).name;
      if (typeof name !== "string") continue;
      for (const socket of sockets) {
        const subscription = socket.deserializeAttachment() as Subscription | null;
        if (subscription === null || !this.#filter(subscription.patterns).matches(name)) continue;
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
