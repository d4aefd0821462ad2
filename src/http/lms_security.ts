/**
 * The security pieces of the LMS `/event` endpoint: identity from the Open edX
 * JWT cookies, Django-compatible CSRF tokens, and the LMS's session hash.
 * Pure functions of their inputs, for every runtime with Web Crypto.
 *
 * @module
 */

import { shake128 } from "@noble/hashes/sha3.js";
import { bytesToHex, utf8ToBytes } from "@noble/hashes/utils.js";
import { createLocalJWKSet, type JSONWebKeySet, jwtVerify } from "jose";

/** The Open edX JWT cookie holding `header.payload` (readable by JavaScript). */
export const JWT_HEADER_PAYLOAD_COOKIE = "edx-jwt-cookie-header-payload";
/** The Open edX JWT cookie holding the signature (HTTP-only). */
export const JWT_SIGNATURE_COOKIE = "edx-jwt-cookie-signature";

/** Who sent an event, as the JWT cookies prove it. */
export interface LmsIdentity {
  /** The `preferred_username` claim. */
  username: string;
  /** The `user_id` claim. */
  userId: number | string | null;
}

/** Options of {@linkcode createJwtVerifier}. */
export interface JwtVerifierOptions {
  /** The LMS's public JWK set (`JWT_PUBLIC_SIGNING_JWK_SET`), as JSON text or an object. */
  jwks: string | { keys: readonly Record<string, unknown>[] };
  /** The `iss` the token must carry. @default not checked */
  issuer?: string;
  /** The `aud` the token must carry. @default not checked */
  audience?: string;
}

/**
 * Builds a verifier of the Open edX JWT cookie pair: the token
 * `header.payload.signature`, RS256 only, checked against the JWK set (and
 * `iss`/`aud` when given) and for expiry. It resolves the identity, or
 * `undefined` for a missing, expired, forged or unsigned token — never the
 * claims of a token it could not verify.
 *
 * @example
 * ```ts
 * import { createJwtVerifier } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const verify = createJwtVerifier({ jwks: '{"keys":[]}' });
 * assert.equal(await verify("eyJhbGciOiJub25lIn0.eyJwcmVmZXJyZWRfdXNlcm5hbWUiOiJldmUifQ", ""), undefined);
 * ```
 *
 * @throws {SyntaxError} If `jwks` is not JSON.
 * @throws {TypeError} If `jwks` is not a JWK set.
 */
export function createJwtVerifier(
  options: JwtVerifierOptions,
): (headerPayload: string | undefined, signature: string | undefined) => Promise<LmsIdentity | undefined> {
  const set = (typeof options.jwks === "string" ? JSON.parse(options.jwks) : options.jwks) as JSONWebKeySet;
  if (set === null || typeof set !== "object" || !Array.isArray(set.keys)) {
    throw new TypeError("The JWK set must be an object with a `keys` array");
  }
  const keys = createLocalJWKSet(set);
  const { issuer, audience } = options;
  return async (headerPayload, signature) => {
    if (!headerPayload || !signature || headerPayload.length + signature.length > 16_384) return undefined;
    try {
      const { payload } = await jwtVerify(`${headerPayload}.${signature}`, keys, {
        algorithms: ["RS256"],
        issuer,
        audience,
      });
      const username = payload.preferred_username;
      if (typeof username !== "string" || username === "") return undefined;
      const userId = payload.user_id;
      return {
        username,
        userId: typeof userId === "number" || typeof userId === "string" ? userId : null,
      };
    } catch {
      return undefined;
    }
  };
}

const CSRF_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const CSRF_TOKEN = /^[a-zA-Z0-9]+$/;
const CSRF_SECRET_LENGTH = 32;

/**
 * The secret of a Django CSRF token: a 32-character secret as it is, a
 * 64-character masked token unmasked (first half the mask, second half the
 * cipher); `undefined` for anything else.
 *
 * @example
 * ```ts
 * import { csrfSecret } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const secret = "abcdefghijklmnopqrstuvwxyzABCDEF";
 * assert.equal(csrfSecret(secret), secret);
 * assert.equal(csrfSecret("a".repeat(32) + secret), secret); // mask "a…a" (index 0) leaves it unchanged
 * assert.equal(csrfSecret("not-a-token"), undefined);
 * ```
 */
export function csrfSecret(token: string | undefined | null): string | undefined {
  if (!token || !CSRF_TOKEN.test(token)) return undefined;
  if (token.length === CSRF_SECRET_LENGTH) return token;
  if (token.length !== 2 * CSRF_SECRET_LENGTH) return undefined;
  let secret = "";
  for (let i = 0; i < CSRF_SECRET_LENGTH; i++) {
    const mask = CSRF_ALPHABET.indexOf(token[i]);
    const cipher = CSRF_ALPHABET.indexOf(token[CSRF_SECRET_LENGTH + i]);
    secret += CSRF_ALPHABET[(cipher - mask + CSRF_ALPHABET.length) % CSRF_ALPHABET.length];
  }
  return secret;
}

/**
 * Masks a CSRF secret as Django does for the `X-CSRFToken` header (a random
 * mask unless one is given): the inverse of {@linkcode csrfSecret}.
 *
 * @example
 * ```ts
 * import { csrfSecret, maskCsrfSecret } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const secret = "abcdefghijklmnopqrstuvwxyzABCDEF";
 * const token = maskCsrfSecret(secret);
 * assert.equal(token.length, 64);
 * assert.equal(csrfSecret(token), secret);
 * ```
 *
 * @throws {TypeError} If the secret or mask is not 32 letters and digits.
 */
export function maskCsrfSecret(secret: string, mask?: string): string {
  if (secret.length !== CSRF_SECRET_LENGTH || !CSRF_TOKEN.test(secret)) {
    throw new TypeError("A CSRF secret is 32 letters and digits");
  }
  if (mask === undefined) {
    const random = crypto.getRandomValues(new Uint8Array(CSRF_SECRET_LENGTH));
    mask = Array.from(random, (byte) => CSRF_ALPHABET[byte % CSRF_ALPHABET.length]).join("");
  } else if (mask.length !== CSRF_SECRET_LENGTH || !CSRF_TOKEN.test(mask)) {
    throw new TypeError("A CSRF mask is 32 letters and digits");
  }
  let cipher = "";
  for (let i = 0; i < CSRF_SECRET_LENGTH; i++) {
    cipher += CSRF_ALPHABET[(CSRF_ALPHABET.indexOf(secret[i]) + CSRF_ALPHABET.indexOf(mask[i])) % CSRF_ALPHABET.length];
  }
  return mask + cipher;
}

/**
 * Whether two strings are equal, in a time that depends on their lengths only.
 *
 * @example
 * ```ts
 * import { constantTimeEqual } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * assert.ok(constantTimeEqual("abc", "abc"));
 * assert.ok(!constantTimeEqual("abc", "abd"));
 * ```
 */
export function constantTimeEqual(a: string, b: string): boolean {
  const x = utf8ToBytes(a);
  const y = utf8ToBytes(b);
  let diff = x.length ^ y.length;
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) diff |= (x[i % (x.length || 1)] ?? 0) ^ (y[i % (y.length || 1)] ?? 0);
  return diff === 0;
}

/**
 * Whether the `X-CSRFToken` header's token matches the `csrftoken` cookie, as
 * Django's CSRF check compares them: either may be a 32-character secret or a
 * 64-character masked token; their secrets must be equal.
 *
 * @example
 * ```ts
 * import { csrfTokensMatch, maskCsrfSecret } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const secret = "abcdefghijklmnopqrstuvwxyzABCDEF";
 * assert.ok(csrfTokensMatch(maskCsrfSecret(secret), secret));
 * assert.ok(!csrfTokensMatch(undefined, secret));
 * ```
 */
export function csrfTokensMatch(header: string | undefined | null, cookie: string | undefined | null): boolean {
  const given = csrfSecret(header);
  const expected = csrfSecret(cookie);
  return given !== undefined && expected !== undefined && constantTimeEqual(given, expected);
}

/**
 * The session hash the LMS's tracking middleware records as `session`:
 * shake_128(secret key + session key) as 16 bytes of hex; `""` without a
 * session key or secret.
 *
 * @example
 * ```ts
 * import { sessionHash } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * assert.equal(sessionHash("secret", "abc").length, 32);
 * assert.equal(sessionHash("secret", undefined), "");
 * ```
 */
export function sessionHash(secret: string | undefined, sessionKey: string | undefined): string {
  if (!secret || !sessionKey) return "";
  return bytesToHex(shake128(utf8ToBytes(secret + sessionKey), { dkLen: 16 }));
}
