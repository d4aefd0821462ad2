/**
 * Stand-ins for the Workers runtime in in-process tests: a Durable Object's
 * SQLite storage over node:sqlite, and the Queue batch a consumer receives
 * for what a producer sent.
 *
 * @module
 */

import { DatabaseSync } from "node:sqlite";
import type { CloudflareQueueMessage, CloudflareQueueSendRequest } from "@edx/event-tracking/cloudflare";

/** A Durable Object's `ctx.storage` over an in-memory SQLite database: `sql.exec` and `transactionSync`. */
export function sqliteStorage() {
  const db = new DatabaseSync(":memory:");
  const sql = {
    exec(query: string, ...bindings: (string | number)[]) {
      const rows = db.prepare(query).all(...bindings);
      return { toArray: () => rows as Record<string, unknown>[] };
    },
  };
  // As the runtime's: what fn wrote is rolled back if it throws.
  function transactionSync<T>(fn: () => T): T {
    db.exec("BEGIN");
    try {
      const result = fn();
      db.exec("COMMIT");
      return result;
    } catch (error) {
      db.exec("ROLLBACK");
      throw error;
    }
  }
  return { sql, transactionSync };
}

/** The batch the `edx-events` consumer receives for the messages a producer sent, each on its first attempt. */
export function queueBatchOf(sent: CloudflareQueueSendRequest[]) {
  const messages: CloudflareQueueMessage[] = sent.map((request, i) => ({
    id: `m${i}`,
    body: JSON.parse(JSON.stringify(request.body)),
    attempts: 1,
    ack() {},
    retry() {},
  }));
  return { queue: "edx-events", messages };
}
