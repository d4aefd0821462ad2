/**
 * Bearer-token authentication compared in constant time.
 *
 * @module
 */

import { HttpError } from "./errors.ts";

const encoder = new TextEncoder();

async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/** Client name → token. A single token belongs to the client `"default"`. */
export type Tokens = string | Readonly<Record<string, string>>;

/**
 * Checks `Authorization: Bearer <token>` headers against the configured
 * tokens. Tokens are compared as SHA-256 digests, byte by byte without early
 * exit, against every client, so timing reveals neither a token nor a client.
 */
export class BearerAuth {
  readonly #clients: Promise<{ client: string; digest: Uint8Array }[]>;

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
    this.#clients = Promise.all(entries.map(async ([client, token]) => ({ client, digest: await digest(token) })));
  }

  /**
   * Returns the authenticated client's name.
   *
   * @throws {HttpError} 401 if the header is missing or no token matches.
   */
  async authenticate(header: string | null): Promise<string> {
    const clients = await this.#clients;
    if (clients.length === 0) {
      throw new HttpError(401, "unauthorized", "No token is configured on this server: set EVENT_TRACKING_TOKEN");
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    if (match === null) {
      throw new HttpError(401, "unauthorized", "Missing bearer token: send 'Authorization: Bearer <token>'");
    }
    const given = await digest(match[1]);
    let found: string | undefined;
    for (const { client, digest } of clients) if (equal(given, digest)) found ??= client;
    if (found === undefined) throw new HttpError(401, "unauthorized", "Wrong bearer token");
    return found;
  }
}
