/**
 * Event ids (UUIDv7) and timestamps, both derived from one millisecond clock
 * reading and cached per millisecond: `new Date().toISOString()` costs about
 * 0.7 µs, a cache hit a comparison.
 *
 * @module
 */

// The counter's 3 hex digits from tables: `toString(16)` and `slice` cost ≈20 ns.
const HEX = "0123456789abcdef";
const HEX2 = Array.from({ length: 256 }, (_, i) => HEX[i >> 4] + HEX[i & 15]);

let cachedMs = -1;
let cachedIso = "";
let cachedPrefix = "";
let sequence = 0;

function tick(now: number): void {
  cachedMs = now;
  cachedIso = new Date(now).toISOString();
  const hex = now.toString(16).padStart(12, "0");
  cachedPrefix = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7`;
  // A random start leaves room for 2,048 monotonic ids in this millisecond
  // while keeping ids of different processes apart.
  sequence = Math.floor(Math.random() * 0x800);
}

/** The id and ISO-8601 UTC timestamp for an event emitted now. */
export interface Stamp {
  id: string;
  timestamp: string;
}

/**
 * Returns a UUIDv7 (RFC 9562: 48-bit Unix milliseconds, version 7, a 12-bit
 * counter that keeps ids of one millisecond in order, 62 random bits) and the
 * matching timestamp. Writes into `into` to avoid an allocation per event.
 */
export function stamp(into: Stamp): Stamp {
  const now = Date.now();
  if (now !== cachedMs) tick(now);
  const counter = sequence < 0xfff ? ++sequence : sequence;
  // randomUUID() is "xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx"; from index 18 on it
  // holds the variant and 62 random bits, exactly what v7 needs there.
  into.id = cachedPrefix + HEX[counter >> 8] + HEX2[counter & 0xff] + crypto.randomUUID().slice(18);
  into.timestamp = cachedIso;
  return into;
}
