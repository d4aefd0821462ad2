/**
 * Tickets for the bus subscription: a browser cannot set `Authorization` on a
 * WebSocket, and a token in the URL ends up in logs and history. So a client
 * that holds the bearer token asks `POST /v1/bus/tickets` for a ticket, a
 * short-lived JWT (HS256, by jose), and offers it as a WebSocket subprotocol
 * (`Sec-WebSocket-Protocol: event-tracking, ticket.<jwt>`). Tickets are
 * verified without state, so a Worker isolate verifies what another issued.
 *
 * @module
 */

import { decodeProtectedHeader, jwtVerify, SignJWT } from "jose";
import { tokenEntries, type Tokens } from "./auth.ts";

/** The subprotocol the bus subscription speaks, and the one the server selects. */
export const BUS_PROTOCOL = "event-tracking";

/** The subprotocol entry that carries a ticket: `ticket.<jwt>`. */
export const TICKET_PROTOCOL_PREFIX = "ticket.";

/** How long a ticket may be used to open a subscription, in seconds. */
export const TICKET_LIFETIME_S = 30;

const AUDIENCE = "event-tracking:bus";
const encoder = new TextEncoder();

/** Issues and verifies bus tickets for the configured clients. */
export interface BusTickets {
  /** A ticket for `client`, valid {@linkcode TICKET_LIFETIME_S} seconds. */
  issue(client: string): Promise<string>;
  /** The client a valid ticket was issued to, or `undefined` for a forged, expired or foreign one. */
  verify(ticket: string): Promise<string | undefined>;
}

/**
 * The ticket offered in a `Sec-WebSocket-Protocol` header, if any.
 *
 * @example
 * ```ts
 * import { offeredTicket } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * assert.equal(offeredTicket("event-tracking, ticket.abc.def.ghi"), "abc.def.ghi");
 * assert.equal(offeredTicket("event-tracking"), undefined);
 * ```
 */
export function offeredTicket(protocols: string | null | undefined): string | undefined {
  for (const protocol of protocols?.split(",") ?? []) {
    const entry = protocol.trim();
    if (entry.startsWith(TICKET_PROTOCOL_PREFIX)) return entry.slice(TICKET_PROTOCOL_PREFIX.length);
  }
  return undefined;
}

/**
 * Whether a `Sec-WebSocket-Protocol` header offers {@linkcode BUS_PROTOCOL}:
 * the server then selects it (a browser fails a handshake that selects
 * nothing of what it offered).
 *
 * @example
 * ```ts
 * import { offersBusProtocol } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * assert.equal(offersBusProtocol("event-tracking, ticket.x"), true);
 * assert.equal(offersBusProtocol(null), false);
 * ```
 */
export function offersBusProtocol(protocols: string | null | undefined): boolean {
  return protocols?.split(",").some((protocol) => protocol.trim() === BUS_PROTOCOL) ?? false;
}

/**
 * Bus tickets signed with a key derived from each client's token: a ticket
 * names its client (`kid`) and is valid only under that client's token, for
 * the bus only (`aud`), for {@linkcode TICKET_LIFETIME_S} seconds.
 *
 * @example
 * ```ts
 * import { busTickets } from "@edx/event-tracking/http";
 * import assert from "node:assert/strict";
 *
 * const tickets = busTickets({ console: "t-console", lms: "t-lms" });
 * const ticket = await tickets.issue("console");
 * assert.equal(await tickets.verify(ticket), "console");
 * assert.equal(await busTickets("another-token").verify(ticket), undefined);
 * ```
 *
 * @throws {TypeError} If a token is empty or not an RFC 6750 bearer token.
 */
export function busTickets(tokens: Tokens | undefined): BusTickets {
  const entries = tokenEntries(tokens);
  const keys = new Map<string, Promise<Uint8Array>>();
  // Not the token itself: a ticket's signature must not help anyone guess the token, nor serve as one.
  const keyOf = (client: string): Promise<Uint8Array> | undefined => {
    let key = keys.get(client);
    if (key === undefined) {
      const token = entries.find(([name]) => name === client)?.[1];
      if (token === undefined) return undefined;
      key = crypto.subtle.digest("SHA-256", encoder.encode(`${AUDIENCE}\n${token}`)).then((d) => new Uint8Array(d));
      keys.set(client, key);
    }
    return key;
  };
  return {
    async issue(client) {
      const key = keyOf(client);
      if (key === undefined) throw new TypeError(`Cannot issue a bus ticket: no client is named "${client}"`);
      return await new SignJWT({}).setProtectedHeader({ alg: "HS256", kid: client }).setAudience(AUDIENCE)
        .setIssuedAt().setExpirationTime(`${TICKET_LIFETIME_S}s`).sign(await key);
    },
    async verify(ticket) {
      let client: unknown;
      try {
        client = decodeProtectedHeader(ticket).kid;
      } catch {
        return undefined;
      }
      const key = typeof client === "string" ? keyOf(client) : undefined;
      if (key === undefined) return undefined;
      try {
        await jwtVerify(ticket, await key, { algorithms: ["HS256"], audience: AUDIENCE, requiredClaims: ["exp"] });
        return client as string;
      } catch {
        return undefined;
      }
    },
  };
}
