/**
 * Reads and validates `POST /v1/events` bodies: all or nothing, naming every
 * bad event by index and field.
 *
 * @module
 */

import { positiveInteger } from "../_checks.ts";
import { type FieldError, HttpError } from "./errors.ts";

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
 * @throws {HttpError} 413 if the body is too large, 400 if it is not UTF-8.
 * @throws {ClientGone} If the connection failed while reading.
 */
export async function readBody(request: Request, maxBytes: number): Promise<string> {
  const tooLarge = () => new HttpError(413, "payload_too_large", `The request body is over ${maxBytes} bytes`);
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (declared > maxBytes) throw tooLarge();
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch (error) {
      // The body stream fails only when the connection does: the client went away mid-request.
      throw new ClientGone(error);
    }
    const { done, value } = chunk;
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "invalid_encoding", "The request body is not valid UTF-8");
  }
}

const EVENT_FIELDS = new Set(["name", "data", "context"]);
const MAX_DEPTH = 32;
const encoder = new TextEncoder();

function depth(value: unknown, limit: number): number {
  if (typeof value !== "object" || value === null) return 0;
  if (limit === 0) return 1;
  let deepest = 0;
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    const d = depth(item, limit - 1);
    if (d > deepest) deepest = d;
  }
  return deepest + 1;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkEvent(value: unknown, index: number, limits: ResolvedLimits, errors: FieldError[]): void {
  const fail = (field: string, message: string) => errors.push({ index, field, message });
  if (!isPlainObject(value)) {
    fail("", `must be an object with a "name", got ${Array.isArray(value) ? "an array" : JSON.stringify(value)}`);
    return;
  }
  for (const key of Object.keys(value)) {
    if (!EVENT_FIELDS.has(key)) fail(key, `unknown field (expected name, data, context)`);
  }
  const { name, data, context } = value;
  if (typeof name !== "string") fail("name", `must be a string, got ${name === null ? "null" : typeof name}`);
  else if (name.length === 0) fail("name", "must not be empty");
  else if (name.length > limits.maxNameLength) {
    fail("name", `must be at most ${limits.maxNameLength} characters, got ${name.length}`);
  }
  if (context !== undefined && !isPlainObject(context)) {
    fail("context", `must be an object, got ${Array.isArray(context) ? "an array" : typeof context}`);
  }
  for (const [field, item] of [["data", data], ["context", context]] as const) {
    if (depth(item, MAX_DEPTH) > MAX_DEPTH) fail(field, `must not nest deeper than ${MAX_DEPTH} levels`);
  }
  const size = encoder.encode(JSON.stringify(value)).byteLength;
  if (size > limits.maxEventBytes) fail("", `is ${size} bytes, over the limit of ${limits.maxEventBytes}`);
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
 * assert.throws(
 *   () => parseEvents('{"events":[{"name":""}]}', resolveLimits()),
 *   (error: { code: string; errors: { index: number; field: string }[] }) =>
 *     error.code === "invalid_events" && error.errors[0].field === "name",
 * );
 * ```
 *
 * @throws {HttpError} 400 `invalid_json`, `invalid_body`, `too_many_events` or `invalid_events`.
 */
export function parseEvents(text: string, limits: ResolvedLimits): IncomingEvent[] {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, "invalid_json", `The request body is not JSON: ${(error as Error).message}`);
  }
  if (!isPlainObject(body)) {
    throw new HttpError(400, "invalid_body", 'The body must be an event object or { "events": [...] }');
  }
  let events: unknown[];
  if ("events" in body) {
    if (!Array.isArray(body.events)) throw new HttpError(400, "invalid_body", '"events" must be an array');
    const extra = Object.keys(body).filter((key) => key !== "events");
    if (extra.length > 0) throw new HttpError(400, "invalid_body", `Unknown field beside "events": "${extra[0]}"`);
    if (body.events.length === 0) throw new HttpError(400, "invalid_body", '"events" must not be empty');
    if (body.events.length > limits.maxBatchSize) {
      throw new HttpError(
        400,
        "too_many_events",
        `A batch holds at most ${limits.maxBatchSize} events, got ${body.events.length}`,
      );
    }
    events = body.events;
  } else {
    events = [body];
  }
  const errors: FieldError[] = [];
  events.forEach((event, index) => checkEvent(event, index, limits, errors));
  if (errors.length > 0) {
    throw new HttpError(400, "invalid_events", `${errors.length} problem(s); no event was accepted`, errors);
  }
  return events as IncomingEvent[];
}
