/**
 * The collector's HTTP errors are Hono's `HTTPException`s carrying the JSON
 * body `{ error, message, errors? }`; {@linkcode httpError} builds them, in one
 * place.
 *
 * @module
 */

import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/**
 * Hono's `HTTPException` (of npm:hono/http-exception), documented by Hono.
 *
 * @internal
 */
export type HonoHTTPException = HTTPException;

/**
 * The HTTP statuses a response may have a body with (`ContentfulStatusCode` of npm:hono).
 *
 * @internal
 */
export type HonoStatus = ContentfulStatusCode;

/** One problem with one event of a request, by index and field. */
export interface FieldError {
  /** The event's index in the batch (0 for a single event). */
  index: number;
  /** The field at fault, e.g. `name`, `data`, or `""` for the event itself. */
  field: string;
  /** What is wrong. */
  message: string;
}

/** Options of {@linkcode httpError}. */
export interface HttpErrorOptions {
  /** Per-event problems, for `400 invalid_events`. */
  errors?: readonly FieldError[];
  /** Seconds the client should wait before retrying (the `Retry-After` header). */
  retryAfter?: number;
  /** The error behind this one. */
  cause?: unknown;
}

/**
 * An `HTTPException` whose response is the collector's JSON error:
 * `{ error: code, message, errors? }`, with `Retry-After` when given.
 *
 * @example
 * ```ts
 * import { httpError } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const error = httpError(503, "overloaded", "retry later", { retryAfter: 1 });
 * const response = error.getResponse();
 * assert.equal(response.status, 503);
 * assert.equal(response.headers.get("retry-after"), "1");
 * assert.deepEqual(await response.json(), { error: "overloaded", message: "retry later" });
 * ```
 */
export function httpError(
  status: HonoStatus,
  code: string,
  message: string,
  options: HttpErrorOptions = {},
): HonoHTTPException {
  const { errors, retryAfter, cause } = options;
  const body = errors === undefined ? { error: code, message } : { error: code, message, errors };
  const headers = retryAfter === undefined ? undefined : { "retry-after": String(retryAfter) };
  return new HTTPException(status, { res: Response.json(body, { status, headers }), message, cause });
}

/**
 * Whether `error` is an `HTTPException`, by duck typing as Hono itself does
 * (`getResponse`), so that it holds when Hono is loaded twice.
 *
 * @example
 * ```ts
 * import { httpError, isHttpException } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isHttpException(httpError(404, "not_found", "nothing here")));
 * assert.ok(!isHttpException(new Error("boom")));
 * ```
 */
export function isHttpException(error: unknown): error is HonoHTTPException {
  return typeof (error as { getResponse?: unknown } | null)?.getResponse === "function";
}

const CODES: Readonly<Record<number, string>> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "too_many_requests",
  503: "unavailable",
};

/**
 * The response of an `HTTPException`: its own when it has one (those of
 * {@linkcode httpError}, `hono/bearer-auth`), else the JSON error body with a
 * code named after the status, so that a plain `new HTTPException(404, { message })`
 * answers as the collector's own errors do.
 */
export function httpExceptionResponse(error: HonoHTTPException): Response {
  if (error.res !== undefined) return error.getResponse();
  const code = CODES[error.status] ?? `http_${error.status}`;
  return Response.json({ error: code, message: error.message || code }, { status: error.status });
}
