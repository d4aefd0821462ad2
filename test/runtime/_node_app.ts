/**
 * What test/runtime/node_test.ts runs under Node.js, bundled: the tracker with
 * context scopes across await (AsyncLocalStorage, found at run time), and
 * RegexFilter's WebAssembly core loaded from where the entry says.
 *
 * @module
 */

import { InMemoryBackend, loadRegexWasm, RegexFilter, type RegexWasmSource, Tracker } from "../../mod.ts";

/** Loads the core from `source` (when given), then prints what the filter and the scopes did as one JSON line. */
export async function run(source: RegexWasmSource | undefined): Promise<void> {
  if (source !== undefined) await loadRegexWasm(source);
  const filter = new RegexFilter({
    filterType: "allowlist",
    regularExpressions: ["edx\\.course\\.", "problem_check$"],
  });
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ backends: { sink }, processors: [filter] });
  await Promise.all([1, 2].map((user_id) =>
    tracker.context("edx.request", { user_id }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 3 - user_id));
      tracker.emit("edx.course.enrollment.activated", { user_id });
      tracker.emit("edx.ui.click");
    })
  ));
  console.log(JSON.stringify({
    matches: ["problem_check", "problem_check\n", "problem_checkX", "edx.course.x", "org.edx.course"].map((name) =>
      filter.matches(name)
    ),
    events: sink.events.map((
      event,
    ) => [event.name, event.context.user_id, (event.data as { user_id: number }).user_id]),
  }));
}
