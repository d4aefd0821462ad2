/**
 * End to end: the operator console (`GET /console`) in headless Chromium
 * against the real Deno collector (`startCollector`), whose tree has an event
 * bus, a healthy async branch and an async branch that cannot write (its file
 * lies under a regular file: ENOTDIR), so it dead-letters everything. The
 * driver (_console_driver.mjs, under Node.js) signs in with a wrong then the
 * right token, and asks this test to post events at each step; it checks the
 * counts, the live tail with and without a filter, pause and resume, the dead
 * letters and their replay, the chart; no console error, no request to
 * another host, no token in a URL. The screenshot is kept in
 * test/artifacts/console.png; `UPDATE_SCREENSHOT=1` copies it to
 * docs/console.png for the README.
 *
 * @module
 */

import { startCollector } from "../../src/deno/serve.ts";
import { RecordingLogger } from "../_helpers.ts";
import { browserSkip, ROOT } from "./_chromium.ts";
import {
  assertChart,
  assertDeadLetters,
  assertInvalidFilter,
  assertLiveTail,
  assertNoStrayTraffic,
  assertScreenshot,
  assertSignIn,
  assertTable,
  consoleSteps,
  EventPoster,
  runConsoleDriver,
  screenshotPath,
} from "./_console_harness.ts";

const skip = browserSkip(import.meta.url, "the operator console browser test");

const TOKEN = "console-test-token";

Deno.test({
  name: "the console in headless Chromium: sign-in, counts, a filtered live tail, dead letters replayed, the chart",
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "event-tracking-console-browser-" });
  // The failing branch writes under a regular file: every write fails with ENOTDIR.
  const blocker = `${dataDir}/a-regular-file`;
  await Deno.writeTextFile(blocker, "nothing can be written under a regular file\n");
  const logger = new RecordingLogger();
  const collector = await startCollector({
    port: 0,
    hostname: "127.0.0.1",
    token: TOKEN,
    dataDir,
    logger,
    config: {
      backends: {
        bus: { ENGINE: "event_bus", OPTIONS: { event_bus_tracking_logs: ["*"], consume: false } },
        healthy: {
          ENGINE: "async_routing",
          OPTIONS: {
            backends: {
              file: { ENGINE: "logger", OPTIONS: { path: `${dataDir}/events.jsonl`, max_event_size: null } },
            },
          },
        },
        failing: {
          ENGINE: "async_routing",
          OPTIONS: {
            max_attempts: 2,
            backoff: { initial_ms: 10, max_ms: 20 },
            backends: { file: { ENGINE: "logger", OPTIONS: { path: `${blocker}/events.jsonl` } } },
          },
        },
      },
    },
  });
  const screenshot = await screenshotPath("console.png");
  // The counts every step waits for: the events went through the root, the bus and the healthy file.
  const steps = consoleSteps(new EventPoster(collector.url, TOKEN), "root/healthy/file");

  try {
    const result = await runConsoleDriver({ url: collector.url, token: TOKEN, screenshot, home: dataDir, steps });
    assertSignIn(result, TOKEN);

    // The table: one row per backend path, in the tree's order, as plain integers.
    const paths = Object.keys(collector.tracker.metrics());
    assertTable(result, paths, "root/healthy/file");

    // The live tail: everything, newest first; then only what the collector's filter lets through.
    assertLiveTail(result);

    // Dead letters: every event of the failing branch, the newest five listed; a replay fails them again.
    assertDeadLetters(result, {
      letter: /2 attempt\(s\)/,
      replay: /^Replayed 10: 0 delivered again, 10 dead-lettered again/,
    });

    assertChart(result, paths);
    assertInvalidFilter(result);
    // No error; nothing asked of another host; the token in no URL. The expected console errors are the
    // browser's own log lines: the wrong token's 401, then the refused filter's handshake and its 400.
    assertNoStrayTraffic(result, TOKEN);

    // The screenshot, kept as an artifact; the README's copy only on request.
    assertScreenshot(screenshot);
    if (Deno.env.get("UPDATE_SCREENSHOT") === "1") {
      await Deno.mkdir(new URL("docs/", ROOT), { recursive: true });
      await Deno.copyFile(screenshot, new URL("docs/console.png", ROOT));
    }
  } finally {
    await collector.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});
