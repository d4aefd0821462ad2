/**
 * The load generator of `deno task load`, in a process of its own: npm
 * `autocannon` POSTs one fixed body to a URL over `connections` keep-alive
 * connections for `durationS` seconds (after `warmupS` seconds whose figures
 * are dropped), and prints one JSON line: requests, requests/s, status counts,
 * errors, and latency percentiles of every answer in milliseconds
 * (autocannon's own histogram keeps whole milliseconds of 2xx answers only,
 * so each answer's time is recorded here).
 *
 * Run: `deno run --allow-all --config dev/deno.json bench/collector_loadgen.ts '<json options>'`
 *
 * @module
 */

import autocannon from "autocannon";

/** What `bench/collector_load.ts` asks for. */
export interface LoadgenOptions {
  url: string;
  body: string;
  headers: Record<string, string>;
  connections: number;
  durationS: number;
  warmupS: number;
}

/** What one measured run did. */
export interface LoadgenResult {
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  statuses: Record<string, number>;
  errors: number;
  timeouts: number;
  /** Answers of the warm-up, by status. */
  warmupStatuses?: Record<string, number>;
  /** Latency of every answer, in milliseconds. */
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
}

interface Run {
  on(event: "response", listener: (client: unknown, status: number, bytes: number, ms: number) => void): void;
}

type Autocannon = (options: Record<string, unknown>) => Promise<Record<string, unknown>> & Run;

async function fire(options: LoadgenOptions, durationS: number, record: boolean): Promise<LoadgenResult> {
  let latencies = new Float64Array(1 << 20);
  let count = 0;
  const statuses: Record<string, number> = {};
  const run = (autocannon as unknown as Autocannon)({
    url: options.url,
    method: "POST",
    headers: options.headers,
    body: options.body,
    connections: options.connections,
    duration: durationS,
    timeout: 10,
  });
  run.on("response", (_client, status, _bytes, ms) => {
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (!record) return;
    if (count === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[count++] = ms;
  });
  const result = await run as {
    duration: number;
    errors: number;
    timeouts: number;
    requests: { total: number };
  };
  const sorted = latencies.subarray(0, count).sort();
  const at = (q: number) => count === 0 ? NaN : sorted[Math.min(count - 1, Math.floor(q * count))];
  return {
    requests: record ? count : Object.values(statuses).reduce((a, b) => a + b, 0),
    seconds: result.duration,
    requestsPerSecond: count / result.duration,
    statuses,
    errors: result.errors,
    timeouts: result.timeouts,
    latencyMs: {
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      p999: at(0.999),
      max: count === 0 ? NaN : sorted[count - 1],
    },
  };
}

if (import.meta.main) {
  const options: LoadgenOptions = JSON.parse(Deno.args[0]);
  const warmup = options.warmupS > 0 ? await fire(options, options.warmupS, false) : undefined;
  const result = await fire(options, options.durationS, true);
  console.log(JSON.stringify({ ...result, warmupStatuses: warmup?.statuses ?? {} }));
}
