/**
 * Bearer-token authentication compared in constant time.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { HttpError } from "./errors.ts";

// Synchronous SHA-256 (node:crypto, in Deno, Node and workerd's nodejs_compat):
// crypto.subtle.digest is asynchronous and costs ~100 µs per request here.
function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** Client name → token. A single token belongs to the client `"default"`. */
export type Tokens = string | Readonly<Record<string, string>>;

/**
 * Checks `Authorization: Bearer <token>` headers against the configured
 * tokens. Tokens are compared as SHA-256 digests, in constant time, against
 * every client, so timing reveals neither a token nor a client.
 */
export class BearerAuth {
  readonly #clients: { client: string; digest: Uint8Array }[];

  /**
   * Prepares the tokens' digests.
   *
   * @throws {TypeError} If a token is empty or not a string.
   */
  constructor(tokens: Tokens | undefined) {
    const entries = tokens === undefined
      ? []
      : typeof tokens === "string"
      ? [["default", tokens]]
      : Object.entries(tokens);
    for (const [client, token] of entries) {
      if (typeof token !== "string" || token === "") {
        throw new TypeError(`Cannot create the collector: the token of client "${client}" must be a non-empty string`);
      }
    }
    this.#clients = entries.map(([client, token]) => ({ client, digest: digest(token) }));
  }

  /**
   * Returns the authenticated client's name.
   *
   * @throws {HttpError} 401 if the header is missing or no token matches.
   */
  authenticate(header: string | null): string {
    if (this.#clients.length === 0) {
      throw new HttpError(401, "unauthorized", "No token is configured on this server: set EVENT_TRACKING_TOKEN");
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    if (match === null) {
      throw new HttpError(401, "unauthorized", "Missing bearer token: send 'Authorization: Bearer <token>'");
    }
    const given = digest(match[1]);
    let found: string | undefined;
    for (const { client, digest } of this.#clients) if (timingSafeEqual(given, digest)) found ??= client;
    if (found === undefined) throw new HttpError(401, "unauthorized", "Wrong bearer token");
    return found;
  }
}
