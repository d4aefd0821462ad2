/**
 * The Python README's example, in TypeScript: prints the three events as JSON lines.
 *
 * Run: `deno task example`
 *
 * @module
 */

import { LoggerBackend, registerTracker, Tracker } from "../mod.ts";

const tracker = new Tracker({ backends: { logger: new LoggerBackend({ maxEventSize: null }) } });
registerTracker(tracker);

tracker.enterContext("outer", { user_id: 10938 });
tracker.emit("navigation.request", { url: "http://www.edx.org/some/path/1" });

tracker.context("inner", { user_id: 11111, session_id: "2987lkjdyoioey" }, () => {
  tracker.emit("navigation.request", { url: "http://www.edx.org/some/path/2" });
});

tracker.emit("address.create", {
  name: "foo",
  address: { postal_code: "90210", country: "United States" },
});

await tracker.close();
