/**
 * Reads and validates `POST /v1/events` bodies: all or nothing, naming every
 * bad event by index and field. The body's shape is a valibot schema
 * ({@linkcode eventsSchema}), checked by `@hono/valibot-validator`.
 *
 * @module
 */

import type { Env, MiddlewareHandler } from "hono";
import type { HTTPException } from "hono/http-exception";
import { vValidator } from "@hono/valibot-validator";
import * as v from "valibot";
import { positiveInteger } from "../_checks.ts";
import { type FieldError, httpError, isHttpException } from "./errors.ts";

/** Limits on what one request may carry. */
export interface CollectorLimits {
  /** The most events in one batch. @default 500 */
  maxBatchSize?: number;
  /** The largest request body, in bytes; larger bodies get 413. @default 1048576 */
  maxBodyBytes?: number;
  /** The largest event (its JSON), in bytes. @default 65536 */
  maxEventBytes?: number;
  /** The longest event name, in characters. @default 256 */
  maxNameLength?: number;
}

/** One event as a client sends it. */
export interface IncomingEvent {
  /** The event name, 1–256 characters. */
  name: string;
  /** The payload. */
  data?: unknown;
  /** Context of the client's own, merged under the request scope. */
  context?: Record<string, unknown>;
}

/** The limits with every default filled in. */
export type ResolvedLimits = Required<CollectorLimits>;

/**
 * Fills in the default limits and checks the given ones.
 *
 * @example
 * ```ts
 * import { resolveLimits } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const limits = resolveLimits({ maxBatchSize: 100 });
 * assert.equal(limits.maxBatchSize, 100);
 * assert.equal(limits.maxBodyBytes, 1024 * 1024);
 * assert.throws(() => resolveLimits({ maxEventBytes: 0 }), RangeError);
 * ```
 *
 * @throws {RangeError} If a limit is not a positive integer.
 */
export function resolveLimits(limits: CollectorLimits = {}): ResolvedLimits {
  const resolved: ResolvedLimits = {
    maxBatchSize: limits.maxBatchSize ?? 500,
    maxBodyBytes: limits.maxBodyBytes ?? 1024 * 1024,
    maxEventBytes: limits.maxEventBytes ?? 64 * 1024,
    maxNameLength: limits.maxNameLength ?? 256,
  };
  for (const [key, value] of Object.entries(resolved)) positiveInteger("the collector", key, value);
  return resolved;
}

/** The client went away before its request body was read: nothing to answer, and nothing went wrong here. */
export class ClientGone extends Error {
  /** Wraps the error the body stream failed with. */
  constructor(cause: unknown) {
    super("The client went away before its request body was read", { cause });
    this.name = "ClientGone";
  }
}

/**
 * Reads a request body as text, refusing more than `maxBytes` whatever the
 * Content-Length header says, and refusing bytes that are not UTF-8.
 *
 * @example
 * ```ts
 * import { isHttpException, readBody } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const post = (body: string) => new Request("http://collector/v1/events", { method: "POST", body });
 * assert.equal(await readBody(post('{"name":"a"}'), 1024), '{"name":"a"}');
 * await assert.rejects(readBody(post("x".repeat(2048)), 1024), (error) => isHttpException(error) && error.status === 413);
 * ```
 *
 * @throws {HTTPException} 413 `payload_too_large` if the body is too large, 400 `invalid_encoding` if it is not UTF-8.
 * @throws {ClientGone} If the connection failed while reading.
 */
export async function readBody(request: Request, maxBytes: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) throw tooLarge(maxBytes);
  if (request.body === null) return "";
  let bytes: Uint8Array;
  if (declared >= 0) {
    // A declared length within the limit: the runtime reads the whole body at once (the HTTP server holds
    // the request to that length).
    try {
      bytes = new Uint8Array(await request.arrayBuffer());
    } catch (error) {
      // The body fails only when the connection does: the client went away mid-request.
      throw new ClientGone(error);
    }
    if (bytes.byteLength > maxBytes) throw tooLarge(maxBytes);
  } else {
    bytes = await readChunked(request.body, maxBytes);
  }
  try {
    return utf8.decode(bytes);
  } catch {
    throw httpError(400, "invalid_encoding", "The request body is not valid UTF-8");
  }
}

// Fatal: bytes that are not UTF-8 throw. One decoder serves every call (each decode is whole, never streamed).
const utf8 = new TextDecoder("utf-8", { fatal: true });

function tooLarge(maxBytes: number) {
  return httpError(413, "payload_too_large", `The request body is over ${maxBytes} bytes`);
}

// A body of no declared length is read chunk by chunk, and refused as soon as it passes the limit.
async function readChunked(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (error) {
      throw new ClientGone(error);
    }
    const { done, value } = chunk;
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0];
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

const MAX_DEPTH = 32;
const encoder = new TextEncoder();

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

/**
 * Walks a parsed JSON value once: returns an upper bound of the UTF-8 size of
 * its JSON (each UTF-16 unit of a string counted as 6 bytes, the most an
 * escape takes; each number as 24, the longest a double prints), or -1 if it
 * nests deeper than `levels` objects or arrays.
 */
function sizeBound(value: unknown, levels: number): number {
  if (typeof value === "string") return 2 + 6 * value.length;
  if (typeof value !== "object" || value === null) return 24;
  if (levels === 0) return -1;
  let size = 2;
  if (Array.isArray(value)) {
    for (const item of value) {
      const itemSize = sizeBound(item, levels - 1);
      if (itemSize < 0) return -1;
      size += itemSize + 1;
    }
  } else {
    for (const key in value) {
      const itemSize = sizeBound((value as Record<string, unknown>)[key], levels - 1);
      if (itemSize < 0) return -1;
      size += 4 + 6 * key.length + itemSize;
    }
  }
  return size;
}

// The exact UTF-8 size of JSON text, without encoding it when its length settles the question.
let scratch = new Uint8Array(0);
function overLimit(json: string, limit: number): boolean {
  if (json.length > limit) return true;
  if (3 * json.length <= limit) return false;
  if (scratch.length < limit) scratch = new Uint8Array(limit);
  return encoder.encodeInto(json, scratch.subarray(0, limit)).read < json.length;
}

/** One event `{ name, data?, context? }`, its nesting and its size checked in one walk. */
function eventSchema(limits: ResolvedLimits) {
  const { maxNameLength, maxEventBytes } = limits;
  return v.pipe(
    v.custom<Record<string, unknown>>(
      isPlainObject,
      (issue) => `must be an object with a "name", got ${describe(issue.input)}`,
    ),
    v.strictObject(
      {
        name: v.pipe(
          v.string((issue) => `must be a string, got ${describe(issue.input)}`),
          v.minLength(1, "must not be empty"),
          v.maxLength(
            maxNameLength,
            (issue) => `must be at most ${maxNameLength} characters, got ${(issue.input as string).length}`,
          ),
        ),
        data: v.optional(v.unknown()),
        context: v.optional(
          v.custom<Record<string, unknown>>(
            isPlainObject,
            (issue) => `must be an object, got ${describe(issue.input)}`,
          ),
        ),
      },
      // A strict object's own issues: an unknown key, or the missing name.
      (issue) =>
        issue.expected === "never" ? "unknown field (expected name, data, context)" : "must be a string, got undefined",
    ),
    // Runs whether or not the fields passed, so that every problem of the event is named at once.
    v.rawCheck(({ dataset, addIssue }) => {
      const event = dataset.value as Record<string, unknown>;
      const name = typeof event.name === "string" ? event.name : "";
      let bound = 11 + 6 * name.length;
      let tooDeep = false;
      for (const field of ["data", "context"] as const) {
        if (!(field in event)) continue;
        const fieldSize = sizeBound(event[field], MAX_DEPTH);
        if (fieldSize < 0) {
          addIssue({
            message: `must not nest deeper than ${MAX_DEPTH} levels`,
            path: [{ type: "object", origin: "value", input: event, key: field, value: event[field] }],
          });
          tooDeep = true;
        }
        bound += 4 + field.length + fieldSize;
      }
      // Without a string name the event is refused already, and its size is no matter.
      if (tooDeep || typeof event.name !== "string") return;
      // Only an event that might be over the limit is serialised to know.
      if (bound <= maxEventBytes) return;
      const json = JSON.stringify(event);
      if (!overLimit(json, maxEventBytes)) return;
      addIssue({ message: `is ${encoder.encode(json).byteLength} bytes, over the limit of ${maxEventBytes}` });
    }),
  );
}

/**
 * The valibot schema of a `POST /v1/events` body: one event
 * `{ name, data?, context? }` or a batch `{ events: [...] }` of at most
 * `maxBatchSize`; its output is the list of events. Each event's `data` and
 * `context` nest at most 32 levels, and its JSON is at most `maxEventBytes`.
 * Issues on the body itself have a path of at most one key; those of an
 * event start with `events`, its index, and the field.
 */
export function eventsSchema(
  limits: ResolvedLimits,
): v.GenericSchema<unknown, IncomingEvent[]> {
  const { maxBatchSize } = limits;
  return v.pipe(
    v.custom<Record<string, unknown>>(isPlainObject, 'The body must be an event object or { "events": [...] }'),
    // One event is a batch of one, so that every event's issues have the same path.
    v.transform((body) => ("events" in body ? body : { events: [body] })),
    v.strictObject(
      {
        events: v.pipe(
          v.array(v.unknown(), '"events" must be an array'),
          v.nonEmpty('"events" must not be empty'),
          v.maxLength(
            maxBatchSize,
            (issue) => `A batch holds at most ${maxBatchSize} events, got ${(issue.input as unknown[]).length}`,
          ),
          // Each event is checked only once the batch's size is.
          v.array(eventSchema(limits)),
        ),
      },
      (issue) => `Unknown field beside "events": "${String(issue.input)}"`,
    ),
    v.transform((body) => body.events as IncomingEvent[]),
  );
}

/**
 * The events of a parsed body that {@linkcode eventsSchema} certainly accepts, checked in one plain pass
 * (the same rules, without valibot's per-event bookkeeping); `undefined` when the body is not plainly
 * valid — wrong in any way, or an event that may be over the size limit — so that the schema decides and
 * words its issues. The events are the body's own objects: for them the schema's output has the same
 * keys and values.
 */
export function plainlyValidEvents(body: unknown, limits: ResolvedLimits): IncomingEvent[] | undefined {
  if (!isPlainObject(body)) return undefined;
  let events: unknown[];
  if ("events" in body) {
    for (const key in body) if (key !== "events") return undefined;
    const batch = body.events;
    if (!Array.isArray(batch) || batch.length === 0 || batch.length > limits.maxBatchSize) return undefined;
    events = batch;
  } else {
    events = [body];
  }
  const { maxNameLength, maxEventBytes } = limits;
  for (let i = 0; i < events.length; i++) {
    const event = events[i];
    if (!isPlainObject(event)) return undefined;
    const { name, data, context } = event;
    if (typeof name !== "string" || name.length === 0 || name.length > maxNameLength) return undefined;
    let bound = 11 + 6 * name.length;
    for (const key in event) {
      if (key === "name") continue;
      if (key === "data") {
        const size = sizeBound(data, MAX_DEPTH);
        if (size < 0) return undefined;
        bound += 8 + size;
      } else if (key === "context") {
        if (!isPlainObject(context)) return undefined;
        const size = sizeBound(context, MAX_DEPTH);
        if (size < 0) return undefined;
        bound += 11 + size;
      } else {
        return undefined;
      }
    }
    if (bound > maxEventBytes) return undefined;
  }
  return events as IncomingEvent[];
}

/**
 * The 400 for a body that failed {@linkcode eventsSchema}: `invalid_body` or
 * `too_many_events` for the body itself, else `invalid_events` naming each
 * problem by event index and field.
 */
export function refusal(issues: readonly v.BaseIssue<unknown>[]): HTTPException {
  const errors: FieldError[] = [];
  for (const issue of issues) {
    const path = issue.path ?? [];
    if (path.length < 2) {
      return httpError(400, issue.type === "max_length" ? "too_many_events" : "invalid_body", issue.message);
    }
    const [, event, field] = path;
    errors.push({
      index: event?.key as number,
      field: (field?.key as string | undefined) ?? "",
      message: issue.message,
    });
  }
  return httpError(400, "invalid_events", `${errors.length} problem(s); no event was accepted`, { errors });
}

function invalidJson(text: string): HTTPException {
  try {
    JSON.parse(text);
  } catch (error) {
    return httpError(400, "invalid_json", `The request body is not JSON: ${(error as Error).message}`);
  }
  return httpError(400, "invalid_json", "The request body is not JSON");
}

const schemas = new WeakMap<ResolvedLimits, v.GenericSchema<unknown, IncomingEvent[]>>();
function schemaFor(limits: ResolvedLimits): v.GenericSchema<unknown, IncomingEvent[]> {
  let schema = schemas.get(limits);
  if (schema === undefined) schemas.set(limits, schema = eventsSchema(limits));
  return schema;
}

/**
 * Parses and validates a body: one event `{ name, data?, context? }` or a
 * batch `{ events: [...] }`. Either every event is valid, or nothing is
 * accepted and the error lists each problem.
 *
 * @example
 * ```ts
 * import { parseEvents, resolveLimits } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const events = parseEvents('{"events":[{"name":"a"},{"name":"b","data":{"x":1}}]}', resolveLimits());
 * assert.deepEqual(events.map((e) => e.name), ["a", "b"]);
 * assert.throws(() => parseEvents('{"events":[{"name":""}]}', resolveLimits()), (error: Error) => {
 *   assert.equal(error.message, "1 problem(s); no event was accepted");
 *   return true;
 * });
 * ```
 *
 * @throws {HTTPException} 400 `invalid_json`, `invalid_body`, `too_many_events` or `invalid_events`.
 */
export function parseEvents(text: string, limits: ResolvedLimits): IncomingEvent[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw invalidJson(text);
  }
  const events = plainlyValidEvents(body, limits);
  if (events !== undefined) return events;
  const result = v.safeParse(schemaFor(limits), body);
  if (!result.success) throw refusal(result.issues);
  return result.output;
}

/** The Hono input of {@linkcode validEvents}: `c.req.valid("json")` is the list of events. */
export type EventsInput = { in: { json: unknown }; out: { json: IncomingEvent[] } };

/**
 * The middlewares of `POST /v1/events` that read and check the body: the
 * body is read within `maxBodyBytes` (413), as UTF-8 (400), and taken as
 * JSON whatever its Content-Type (`navigator.sendBeacon` sends `text/plain`,
 * `curl -d` a form type). A body that {@linkcode plainlyValidEvents} takes
 * goes on as it is; any other goes through `@hono/valibot-validator` with
 * {@linkcode eventsSchema}, which answers each problem as a 400 in the
 * collector's shape. A client that goes away while its body is read throws
 * {@linkcode ClientGone}.
 */
export function validEvents<E extends Env = Env>(limits: ResolvedLimits): MiddlewareHandler<E, string, EventsInput> {
  const validate: MiddlewareHandler<E, string, EventsInput> = vValidator("json", schemaFor(limits), (result) => {
    if (!result.success) throw refusal(result.issues);
  }) as MiddlewareHandler;
  return async function validEvents(c, next) {
    const text = await readBody(c.req.raw, limits.maxBodyBytes);
    // A body the schema plainly accepts is taken as it is; any other goes through the validator, which words its 400.
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const events = plainlyValidEvents(body, limits);
    if (events !== undefined) {
      c.req.addValidatedData("json", events);
      return next();
    }
    // Hono's validator reads the body from this cache, and only for a JSON Content-Type.
    (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    const mediaType = (c.req.header("content-type") ?? "").split(";")[0].trim();
    if (!/^application\/([\w.-]+\+)?json$/i.test(mediaType)) {
      // The body is taken as JSON: the request says so from here on.
      const { raw } = c.req;
      try {
        raw.headers.set("content-type", "application/json");
      } catch {
        // Immutable headers (a Worker's incoming request): a copy without the body, which is read already.
        const headers = new Headers(raw.headers);
        headers.set("content-type", "application/json");
        c.req.raw = new Request(raw.url, { method: raw.method, headers, signal: raw.signal });
      }
    }
    let validated = false;
    try {
      return await validate(c, () => {
        validated = true;
        return next();
      });
    } catch (error) {
      // Before `next`, the validator's only exception of its own is for a body that is not JSON.
      if (!validated && isHttpException(error) && error.res === undefined) throw invalidJson(text);
      throw error;
    }
  };
}
