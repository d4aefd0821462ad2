/**
 * Where the library reports its own problems (failing backends, processors
 * that throw, oversized events).
 *
 * @module
 */

/**
 * Receives the library's own diagnostics. `console` satisfies it.
 *
 * @example Collect diagnostics in a test
 * ```ts
 * import { type DiagnosticLogger, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const logger: DiagnosticLogger = { warn: (m) => lines.push(m), error: (m) => lines.push(m) };
 * const tracker = new Tracker({
 *   logger,
 *   backends: { broken: { send() { throw new Error("down"); } } },
 * });
 * tracker.emit("a");
 * assert.equal(lines.length, 1);
 * ```
 */
export interface DiagnosticLogger {
  /** Something was lost or refused on purpose, e.g. an oversized event. */
  warn(message: string, detail?: unknown): void;
  /** Something failed, e.g. a backend threw. */
  error(message: string, detail?: unknown): void;
}

/** The default diagnostics destination: the console's standard error. */
export const consoleLogger: DiagnosticLogger = {
  warn(message, detail) {
    if (detail === undefined) console.warn(message);
    else console.warn(message, detail);
  },
  error(message, detail) {
    if (detail === undefined) console.error(message);
    else console.error(message, detail);
  },
};

/**
 * Describes a value's type for error messages: a class name for objects,
 * the constructor name for primitives, `null` and `undefined` as such.
 */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (typeof value === "function") return value.name ? `function ${value.name}` : "function";
  if (typeof value === "object") {
    const proto = Object.getPrototypeOf(value);
    return proto === null ? "Object" : proto.constructor?.name ?? "Object";
  }
  const ctor = (Object(value) as { constructor?: { name?: string } }).constructor;
  return ctor?.name ?? typeof value;
}
