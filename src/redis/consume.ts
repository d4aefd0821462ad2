/**
 * `deno task consume`: reads an Open edX event-bus stream through a consumer
 * group and delivers each tracking event to a tree — the one in
 * `EVENT_TRACKING_CONFIG`, by default the collector's (every event to
 * `events.jsonl`, and to MongoDB when `MONGODB_URI` is set).
 *
 * ```sh
 * EVENT_BUS_REDIS_CONNECTION_URL=redis://localhost:6379/0 EVENT_BUS_TOPIC_PREFIX=dev \
 *   deno task consume --topic analytics --group event_tracking --consumer worker-1
 * ```
 *
 * Options: `--topic` (default `analytics`), `--group` and `--consumer`
 * (required; keep the consumer name across restarts), `--from` (where a new
 * group starts: `0`, the default, `$` or an entry id), `--batch-size` (100),
 * `--claim-idle-ms` (60000), `--max-deliveries` (5), `--data-dir` (default
 * `<EVENT_TRACKING_DATA_DIR or ./data>/consumers/<consumer>`, so that a
 * consumer never shares a file with a collector or another consumer),
 * `--metrics-port` (serve `GET /metrics` in the Prometheus format: the
 * consumer's counts, the group's lag and pending count read at each scrape,
 * and the tree's metrics; `--metrics-hostname`, default 127.0.0.1).
 *
 * Environment: `EVENT_BUS_REDIS_CONNECTION_URL` (required),
 * `EVENT_BUS_TOPIC_PREFIX`, `EVENT_TRACKING_CONFIG` (a JSON file path or
 * inline JSON, `"preset:…"` names allowed), `EVENT_TRACKING_DATA_DIR`,
 * `MONGODB_URI`. The tree's event buses stay in this process: a consumer
 * never publishes back to the stream it reads.
 *
 * SIGTERM or SIGINT stops it: the batch in delivery gets up to 5 s, the tree
 * up to 3 s more to write or dead-letter what it holds, and the process exits
 * 0 within 10 s. Entries not acknowledged by then stay pending and are
 * delivered at the next start.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createTracker, type Engine, MONGO_ENGINE_NAMES, type TrackerConfig } from "../config.ts";
import { consoleLogger } from "../diagnostics.ts";
import { toPrometheus } from "../metrics.ts";
import { defaultCollectorConfig } from "../deno/serve.ts";
import { RedisStreamsConsumer } from "./consumer.ts";
import { readRedisBusSettings } from "./env.ts";
import { resolvePresets } from "./presets.ts";

const USAGE = "Usage: deno task consume --group <group> --consumer <name> [--topic analytics] [--from 0|$|<id>] " +
  "[--batch-size 100] [--claim-idle-ms 60000] [--max-deliveries 5] [--data-dir <dir>] [--metrics-port <port>] " +
  "[--metrics-hostname 127.0.0.1]";

/** How long the batch in delivery may take after SIGTERM, then the tree's close; the process exits well within 10 s. */
const STOP_TIMEOUT_MS = 5_000;
const CLOSE_DEADLINE_MS = 3_000;
const EXIT_AFTER_MS = 9_500;

class UsageError extends Error {}

function integerOption(values: Record<string, unknown>, name: string, min: number): number | undefined {
  const text = values[name];
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new UsageError(`--${name} must be an integer of at least ${min}, got ${JSON.stringify(text)}`);
  }
  return value;
}

async function loadConfig(value: string): Promise<TrackerConfig> {
  const text = value.trimStart().startsWith("{") ? value : await Deno.readTextFile(value);
  try {
    return resolvePresets(JSON.parse(text));
  } catch (error) {
    if (error instanceof SyntaxError) {
      throw new SyntaxError(`Cannot read EVENT_TRACKING_CONFIG: not JSON (${error.message})`);
    }
    throw error;
  }
}

async function mongoEnginesFor(
  config: TrackerConfig,
  uri: string | undefined,
): Promise<Readonly<Record<string, Engine>> | undefined> {
  const text = JSON.stringify(config);
  if (!MONGO_ENGINE_NAMES.some((name) => text.includes(`"ENGINE":${JSON.stringify(name)}`))) return undefined;
  const { mongoEngines } = await import("../backends/mongo.ts");
  return mongoEngines(uri);
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      topic: { type: "string" },
      group: { type: "string" },
      consumer: { type: "string" },
      from: { type: "string" },
      "batch-size": { type: "string" },
      "claim-idle-ms": { type: "string" },
      "max-deliveries": { type: "string" },
      "data-dir": { type: "string" },
      "metrics-port": { type: "string" },
      "metrics-hostname": { type: "string" },
      help: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.group || !values.consumer) throw new UsageError("--group and --consumer are required");
  const env = Deno.env.toObject();
  const settings = readRedisBusSettings(env);
  if (settings === undefined) throw new UsageError("Set EVENT_BUS_REDIS_CONNECTION_URL to the Redis server to read");
  const batchSize = integerOption(values, "batch-size", 1);
  const claimIdleMs = integerOption(values, "claim-idle-ms", 1);
  const maxDeliveries = integerOption(values, "max-deliveries", 1);
  const metricsPort = integerOption(values, "metrics-port", 0);
  const dataDir = values["data-dir"] ||
    `${env.EVENT_TRACKING_DATA_DIR || "data"}/consumers/${values.consumer.replace(/[^\w.-]/g, "_")}`;
  const config = env.EVENT_TRACKING_CONFIG
    ? await loadConfig(env.EVENT_TRACKING_CONFIG)
    : defaultCollectorConfig(dataDir, env.MONGODB_URI || undefined);
  // No busTransport: the tree's event buses stay in this process, so nothing read is published back.
  const tracker = createTracker(config, {
    dataDir,
    logger: consoleLogger,
    engines: await mongoEnginesFor(config, env.MONGODB_URI || undefined),
  });
  const consumer = new RedisStreamsConsumer({
    url: settings.url,
    topicPrefix: settings.topicPrefix,
    topic: values.topic || undefined,
    group: values.group,
    consumer: values.consumer,
    from: values.from,
    batchSize,
    claimIdleMs,
    maxDeliveries,
    target: tracker,
  });
  let metricsServer: Deno.HttpServer | undefined;
  if (metricsPort !== undefined) {
    metricsServer = Deno.serve({
      port: metricsPort,
      hostname: values["metrics-hostname"] || "127.0.0.1",
      onListen: ({ hostname, port }) => console.error(`Metrics at http://${hostname}:${port}/metrics`),
    }, async (request) => {
      const { pathname } = new URL(request.url);
      if (pathname === "/metrics") {
        await consumer.refreshLag().catch(() => {}); // unreachable: the lag last read is shown
        return new Response(consumer.toPrometheus() + toPrometheus(tracker.metrics()), {
          headers: { "content-type": "text/plain; version=0.0.4" },
        });
      }
      if (pathname === "/health") return Response.json({ status: "ok" });
      return new Response("Not found\n", { status: 404 });
    });
  }
  let stopping: string | undefined;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = signal;
    console.error(`${signal}: stopping; entries not acknowledged stay pending for the next start`);
    setTimeout(() => {
      console.error(`The consumer did not stop within ${EXIT_AFTER_MS / 1000} s of ${signal}; exiting`);
      Deno.exit(0);
    }, EXIT_AFTER_MS);
    consumer.stop({ timeoutMs: STOP_TIMEOUT_MS });
  };
  Deno.addSignalListener("SIGTERM", () => stop("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => stop("SIGINT"));
  console.error(
    `Consuming stream ${consumer.stream} at ${consumer.server} as ${consumer.group}/${consumer.consumer}` +
      ` into ${env.EVENT_TRACKING_CONFIG ? "EVENT_TRACKING_CONFIG's tree" : `the collector's tree (${dataDir})`};` +
      ` undeliverable entries go to ${consumer.deadLetterStream}`,
  );
  let status = 0;
  try {
    await consumer.run();
  } catch (error) {
    console.error("The consumer stopped on an error", error);
    status = 1;
  }
  await tracker.close({ deadlineMs: CLOSE_DEADLINE_MS });
  await metricsServer?.shutdown();
  const m = consumer.metrics();
  console.error(
    `Consumer stopped: ${m.delivered} delivered, ${m.deadLettered} dead-lettered, ${m.failed} failed deliveries, ` +
      `${m.claimed} claimed, ${m.trimmed} trimmed`,
  );
  return status;
}

if (import.meta.main) {
  let status: number;
  try {
    status = await main(Deno.args);
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`${(error as Error).message}\n${USAGE}`);
      status = 2;
    } else {
      console.error(error instanceof RangeError || error instanceof SyntaxError ? error.message : error);
      status = 1;
    }
  }
  Deno.exit(status);
}
