/**
 * Bearer-token authentication by `hono/bearer-auth`, with a `verifyToken`
 * that maps each token to its client and compares in constant time.
 *
 * @module
 */

import { bearerAuth } from "hono/bearer-auth";
import type { HonoMiddleware } from "./_hono.ts";

/** Client name → token. A single token belongs to the client `"default"`. */
export type Tokens = string | Readonly<Record<string, string>>;

/** A Hono environment whose variable `client` names the authenticated client. */
export type ClientEnv = { Variables: { client: string } };

/** What `hono/bearer-auth` accepts as a token (RFC 6750 `b64token`). */
const TOKEN_SYNTAX = /^[A-Za-z0-9._~+/-]+=*$/;
const encoder = new TextEncoder();

// Web Crypto: the same on Deno, Node, Bun, Workers and browsers.
async function digest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

// Both are SHA-256 digests: 32 bytes, compared whole whatever they hold.
function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i] ^ b[i];
  return difference === 0;
}

/**
 * The configured tokens as `[client, token]` pairs, checked.
 *
 * @throws {TypeError} If a token is empty, not a string, or not an RFC 6750 bearer token.
 */
export function tokenEntries(tokens: Tokens | undefined): [client: string, token: string][] {
  const entries: [string, string][] = tokens === undefined
    ? []
    : typeof tokens === "string"
    ? [["default", tokens]]
    : Object.entries(tokens);
  for (const [client, token] of entries) {
    if (typeof token !== "string" || token === "") {
      throw new TypeError(`Cannot create the collector: the token of client "${client}" must be a non-empty string`);
    }
    if (!TOKEN_SYNTAX.test(token)) {
      throw new TypeError(
        `Cannot create the collector: the token of client "${client}" must be a bearer token ` +
          "(letters, digits and -._~+/, then optional = padding)",
      );
    }
  }
  return entries;
}

/**
 * `hono/bearer-auth` over the configured tokens: sets the Hono variable
 * `client` to the authenticated client's name. Tokens are compared as SHA-256
 * digests, in constant time, against every client, so timing reveals neither
 * a token nor a client. A token that matched is remembered by its full text
 * (at most one entry per configured token), so later requests with it skip
 * the digest; any other token is digested and compared every time. Every
 * refusal is a 401 with `WWW-Authenticate: Bearer …` (as Hono words it) and
 * the JSON body `{ error: "unauthorized", message }`; without any token
 * configured, every request is refused.
 *
 * @example Protect routes of your own, one token per client
 * ```ts
 * import { Hono } from "hono";
 * import { clientBearerAuth } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const app = new Hono<{ Variables: { client: string } }>();
 * app.use("/api/*", clientBearerAuth({ lms: "t-lms", studio: "t-studio" }));
 * app.get("/api/whoami", (c) => c.text(c.get("client")));
 * const known = await app.request("/api/whoami", { headers: { authorization: "Bearer t-studio" } });
 * assert.equal(await known.text(), "studio");
 * const refused = await app.request("/api/whoami", { headers: { authorization: "Bearer nope" } });
 * assert.equal(refused.status, 401);
 * assert.equal(refused.headers.get("www-authenticate"), 'Bearer error="invalid_token"');
 * assert.equal((await refused.json()).error, "unauthorized");
 * ```
 *
 * @throws {TypeError} If a token is empty, not a string, or not an RFC 6750 bearer token.
 */
export function clientBearerAuth<E extends ClientEnv = ClientEnv>(tokens: Tokens | undefined): HonoMiddleware<E> {
  const entries = tokenEntries(tokens);
  // Digested on first use: Web Crypto is asynchronous, and a Worker may not start work outside a request.
  let clients: Promise<{ client: string; digest: Uint8Array }[]> | undefined;
  // Tokens verified once, whole string → client: a known token skips the digest from then on. Only a token
  // whose digest matched enters it, so it holds at most one entry per configured token; any other token
  // (unknown, wrong, a prefix of a right one) takes the constant-time comparison of digests every time.
  const verified = new Map<string, string>();
  const verify = async (token: string): Promise<string | undefined> => {
    clients ??= Promise.all(entries.map(async ([client, token]) => ({ client, digest: await digest(token) })));
    const given = await digest(token);
    let found: string | undefined;
    for (const { client, digest } of await clients) if (sameDigest(given, digest)) found ??= client;
    if (found !== undefined && verified.size < entries.length) verified.set(token, found);
    return found;
  };
  const unauthorized = (message: string) => () =>
    Response.json({
      error: "unauthorized",
      message: entries.length === 0 ? "No token is configured on this server: set EVENT_TRACKING_TOKEN" : message,
    }, { status: 401 });
  const missing = unauthorized("Missing bearer token: send 'Authorization: Bearer <token>'");
  return bearerAuth<E>({
    realm: "event-tracking",
    verifyToken(token, c) {
      if (entries.length === 0) return false;
      const known = verified.get(token);
      if (known !== undefined) {
        c.set("client", known);
        return true;
      }
      return verify(token).then((found) => {
        if (found === undefined) return false;
        c.set("client", found);
        return true;
      });
    },
    noAuthenticationHeader: { message: missing },
    // Hono answers a malformed header 400; the collector keeps 401 for every refusal.
    invalidAuthenticationHeader: { message: missing },
    invalidToken: { message: unauthorized("Wrong bearer token") },
  });
}
