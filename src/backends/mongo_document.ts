/**
 * The document MongoBackend stores for an event, and its idempotent `_id`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { ObjectId } from "mongodb";
import type { DriverObjectId } from "./_mongo_types.ts";
import type { TrackingEvent } from "../event.ts";

/** The document stored for one event. */
export interface MongoEventDocument {
  /** Derived from the event's id by {@linkcode eventObjectId}, so a redelivered event is recognised. */
  _id: DriverObjectId;
  /** The event's id. */
  id: string;
  /** The event's name. */
  name: string;
  /** The event's timestamp as a BSON date (kept as text if it is not a date). */
  timestamp: Date | string;
  /** The event's context. */
  context: Readonly<Record<string, unknown>>;
  /** The event's payload. */
  data: unknown;
}

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/**
 * Derives a document `_id` from an event id, so that writing an event twice
 * meets the `_id` index instead of creating a second document.
 *
 * An ObjectId has 96 bits. For a UUIDv7 (what the tracker makes) they are:
 * 32 bits of Unix seconds (so `_id` grows with time, like a driver-made
 * ObjectId: appends to the `_id` index, and `getTimestamp()` is right), then
 * the millisecond within that second (10 bits), the UUID's 12-bit counter and
 * 42 of its 62 random bits. Bounds: one process's ids never collide while it
 * emits fewer than 2,048 events in a millisecond (its counter starts below
 * 0x800 each millisecond and counts up to 0xfff). Ids of two processes
 * collide only with the same millisecond, counter and 42 random bits: with P
 * processes each emitting k events per millisecond, about
 * P²/2 · k² · 2⁻¹¹ · 2⁻⁴² collisions per millisecond — at 10,000 events/s
 * from 100 processes, one chance in 6,000 per year. (Taking the first 12 bytes
 * of the UUID would keep 30 random bits: 4,096 times more. A 96-bit SHA-256
 * prefix scatters `_id` across the index and costs about 6 µs per event with
 * `node:crypto` in Deno, measured.) Other ids get the first 12 bytes of their
 * SHA-256 (n events collide with probability about n²/2⁹⁷). Even then a
 * collision is not silent: a duplicate `_id` whose stored `id` differs fails
 * the event instead of counting it as delivered.
 *
 * @example A UUIDv7 keeps its second
 * ```ts
 * import { eventObjectId } from "@edx/event-tracking/mongo";
 * import assert from "node:assert/strict";
 *
 * const id = eventObjectId("019ac6a1-2b3c-7123-8456-789abcdef012");
 * assert.equal(id.getTimestamp().toISOString(), "2025-11-27T18:44:02.000Z");
 * assert.equal(id.toHexString(), eventObjectId("019AC6A1-2B3C-7123-8456-789ABCDEF012").toHexString());
 * ```
 *
 * @param id The event's id.
 * @returns The same ObjectId for the same id, every time.
 */
export function eventObjectId(id: string): DriverObjectId {
  if (UUID_V7.test(id)) {
    const uuid = id.toLowerCase();
    const ms = parseInt(uuid.slice(0, 8), 16) * 0x10000 + parseInt(uuid.slice(9, 13), 16);
    const seconds = Math.floor(ms / 1000);
    const middle = (ms - seconds * 1000) << 14 | parseInt(uuid.slice(15, 18), 16) << 2 | parseInt(uuid[19], 16) & 3;
    return ObjectId.createFromHexString(
      (seconds >>> 0).toString(16).padStart(8, "0") + middle.toString(16).padStart(6, "0") + uuid.slice(20, 23) +
        uuid.slice(24, 31),
    );
  }
  return new ObjectId(createHash("sha256").update(id).digest().subarray(0, 12));
}

/**
 * Builds the document stored for an event; the event is not changed.
 *
 * @example The stored form of an event
 * ```ts
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import { eventObjectId, toMongoDocument } from "@edx/event-tracking/mongo";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * new Tracker({ backends: { sink } }).emit("edx.ui.click", { x: 1 });
 * const doc = toMongoDocument(sink.events[0]);
 * assert.ok(doc.timestamp instanceof Date);
 * assert.ok(doc._id.equals(eventObjectId(sink.events[0].id)));
 * assert.deepEqual(doc.data, { x: 1 });
 * ```
 *
 * @param event The event to store.
 * @returns A new document; `context` and `data` are the event's own (frozen) objects.
 * @throws {TypeError} If the event's `id` is not a non-empty string.
 */
export function toMongoDocument(event: TrackingEvent): MongoEventDocument {
  const id = event.id;
  if (typeof id !== "string" || id === "") {
    throw new TypeError(
      `Cannot write event "${event.name}" to MongoDB as its 'id' must be a non-empty string: current value is ${
        JSON.stringify(id) ?? String(id)
      }`,
    );
  }
  const ms = Date.parse(event.timestamp);
  return {
    _id: eventObjectId(id),
    id,
    name: event.name,
    timestamp: Number.isNaN(ms) ? event.timestamp : new Date(ms),
    context: event.context,
    data: event.data,
  };
}
