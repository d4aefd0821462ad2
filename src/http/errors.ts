/**
 * The one HTTP error class of the collector: it knows its status and its JSON body.
 *
 * @module
 */

/** One problem with one event of a request, by index and field. */
export interface FieldError {
  /** The event's index in the batch (0 for a single event). */
  index: number;
  /** The field at fault, e.g. `name`, `data`, or `""` for the event itself. */
  field: string;
  /** What is wrong. */
  message: string;
}

/**
 * An error the collector answers with: `status` and a JSON body
 * `{ error, message, errors? }`. Recognised by duck typing (`getResponse`), so
 * it works when the module is loaded twice.
 *
 * @example
 * ```ts
 * import { HttpError } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const response = new HttpError(413, "payload_too_large", "body over 1048576 bytes").getResponse();
 * assert.equal(response.status, 413);
 * assert.equal((await response.json()).error, "payload_too_large");
 * ```
 */
export class HttpError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** A stable machine-readable code, e.g. `invalid_events`. */
  readonly code: string;
  /** Per-event problems, for `400 invalid_events`. */
  readonly errors: readonly FieldError[] | undefined;

  /** Seconds the client should wait before retrying (the `Retry-After` header). */
  readonly retryAfter: number | undefined;

  /** Creates the error. */
  constructor(status: number, code: string, message: string, errors?: readonly FieldError[], retryAfter?: number) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.code = code;
    this.errors = errors;
    this.retryAfter = retryAfter;
  }

  /** The JSON response for this error. */
  getResponse(): Response {
    const body = this.errors === undefined
      ? { error: this.code, message: this.message }
      : { error: this.code, message: this.message, errors: this.errors };
    const headers = this.retryAfter === undefined ? undefined : { "retry-after": String(this.retryAfter) };
    return Response.json(body, { status: this.status, headers });
  }
}
