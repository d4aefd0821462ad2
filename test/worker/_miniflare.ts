/**
 * Runs the collector Worker as it deploys: wrangler bundles worker/ (the
 * same `wrangler deploy --dry-run` as the `build:worker` task), and
 * Miniflare runs the bundle with the bindings wrangler reads from
 * worker/wrangler.toml, plus a second Worker that records what reaches the
 * dead-letter queue. Variants of the collector (the same bundle with other
 * bindings) answer on their own host names.
 *
 * @module
 */

import type { Readable } from "node:stream";

/** A WebSocket as Miniflare hands back the Worker's end of an upgrade: it must be accepted. */
export interface MiniflareWebSocket {
  /** Starts receiving. */
  accept(): void;
  /** Sends a text frame. */
  send(text: string): void;
  /** Closes the socket. */
  close(code?: number, reason?: string): void;
  /** Listens for frames. */
  addEventListener(type: "message", listener: (event: { data: unknown }) => void): void;
}

/** A response from Miniflare: a fetch Response, plus the socket of a WebSocket upgrade. */
export type MiniflareResponse = Response & { readonly webSocket: MiniflareWebSocket | null };

/** The part of Miniflare the tests use. */
export interface Miniflare {
  /** Resolves once every Worker is running. */
  readonly ready: Promise<unknown>;
  /** Sends a request to the Worker the URL's host routes to. */
  dispatchFetch(input: string, init?: RequestInit): Promise<MiniflareResponse>;
  /** A KV namespace binding of a Worker. */
  getKVNamespace(name: string, worker?: string): Promise<unknown>;
  /** Stops workerd. */
  dispose(): Promise<void>;
}

// Miniflare's and wrangler's type declarations load @cloudflare/workers-types, whose globals replace the
// runtime's in the whole `deno test` program (Response.json() becomes `unknown` in every test): both are
// loaded untyped, through the narrow interface above. The specifiers are not literals so that the
// type checker does not follow them.
const MINIFLARE = "miniflare";
const WRANGLER_API = "wrangler";

interface Tools {
  Miniflare: new (options: Record<string, unknown>) => Miniflare;
  unstable_getMiniflareWorkerOptions(path: string): {
    workerOptions: Record<string, unknown> & { compatibilityDate?: string; modulesRules?: unknown[] };
  };
}

async function tools(): Promise<Tools> {
  const [miniflare, wrangler] = await Promise.all([import(MINIFLARE), import(WRANGLER_API)]);
  return {
    Miniflare: miniflare.Miniflare,
    unstable_getMiniflareWorkerOptions: wrangler.unstable_getMiniflareWorkerOptions,
  };
}

const ROOT = new URL("../../", import.meta.url).pathname;
const WRANGLER_TOML = `${ROOT}worker/wrangler.toml`;
/** The wrangler package the bundle is built with (dev/deno.json pins the same). */
const WRANGLER = "npm:wrangler@4.116.0";
/** The config whose import map and lockfile hold the dev tools, wrangler among them. */
const DEV_CONFIG = `${ROOT}dev/deno.json`;
/** The binding of the dead-letter observer's KV namespace. */
export const DEAD_LETTERS_KV = "DEAD_LETTERS";
/** The name of the Worker that consumes the dead-letter queue in the tests. */
export const OBSERVER = "dead-letter-observer";
/**
 * Where a variant with `rejectingQueue` answers `{ calls }`: how many
 * `sendBatch` calls its Queue stand-in refused.
 */
export const REJECTED_CALLS_PATH = "/__test/rejected-sendbatch-calls";

/**
 * The entry module of a variant with `rejectingQueue`: the bundle's own
 * exports, with `EVENTS_QUEUE` replaced by an object whose `sendBatch`
 * always rejects. Nothing else of the Worker is changed.
 */
const REJECTING_QUEUE_ENTRY = `import collector from "./index.js";
// Every Durable Object class the bindings name (wrangler.toml), so that each binding works in the variant too.
export { DeadLetterObject, EventBusObject, MetricsObject } from "./index.js";
let calls = 0;
const queue = {
  async sendBatch(messages) {
    calls++;
    throw new Error("Queue unavailable (test double): " + [...messages].length + " message(s) refused");
  },
};
// One bindings object per real one: the Worker builds its app once per bindings object.
const envs = new WeakMap();
function withRejectingQueue(env) {
  let replaced = envs.get(env);
  if (replaced === undefined) envs.set(env, replaced = { ...env, EVENTS_QUEUE: queue });
  return replaced;
}
export default {
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname === "${REJECTED_CALLS_PATH}") return Response.json({ calls });
    return collector.fetch(request, withRejectingQueue(env), ctx);
  },
};
`;

/** Bundles the Worker into a new temporary directory and returns it. */
export async function bundleWorker(): Promise<string> {
  const outdir = await Deno.makeTempDir({ prefix: "event-tracking-worker-" });
  // `deno install` links every npm import (hono, mongodb) into node_modules/, where wrangler's bundler looks.
  await run(["install"]);
  await run([
    "run",
    "-A",
    "--config",
    DEV_CONFIG,
    WRANGLER,
    "deploy",
    "--dry-run",
    "--config",
    WRANGLER_TOML,
    "--outdir",
    outdir,
  ]);
  return outdir;
}

async function run(args: string[]): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const text = new TextDecoder();
    throw new Error(
      `Cannot bundle the Worker: deno ${args.join(" ")} failed:\n${text.decode(stdout)}\n${text.decode(stderr)}`,
    );
  }
}

/** Another collector Worker: the same bundle with other bindings, and no queue consumer. */
export interface CollectorVariant {
  /** The host name `dispatchFetch` routes to it, e.g. `two-buses.test`. */
  host: string;
  /** Its string bindings. */
  vars: Record<string, string>;
  /**
   * Runs the bundle behind an entry module that replaces `EVENTS_QUEUE` with
   * an object whose `sendBatch` always rejects: a Queue that is down, which
   * Miniflare's Queue cannot be made to be (the transport keeps within every
   * limit it enforces, and an RPC service as the binding fails to clone the
   * event instead). `GET` {@linkcode REJECTED_CALLS_PATH} answers how many
   * calls it refused. Without it the variant sends to the Queue the main
   * collector consumes.
   */
  rejectingQueue?: boolean;
}

/** Options of {@linkcode startWorker}. */
export interface StartWorkerOptions {
  /** The directory {@linkcode bundleWorker} made. */
  bundle: string;
  /** The Worker's string bindings (EVENT_TRACKING_TOKEN, EVENT_TRACKING_CONFIG, MONGODB_URI). */
  vars: Record<string, string>;
  /** Receives the Worker's standard output, chunk by chunk. */
  stdout: (text: string) => void;
  /** Collector variants, each at its own host name. @default [] */
  variants?: CollectorVariant[];
  /** A directory where Durable Objects keep their storage, so that a later Miniflare on it finds it. @default in memory */
  persist?: string;
}

/**
 * Starts Miniflare with the bundled Worker. The queue consumer keeps the
 * wrangler.toml settings except a shorter batch timeout and two retries, so
 * tests run in seconds.
 */
export async function startWorker(options: StartWorkerOptions): Promise<Miniflare> {
  const { Miniflare, unstable_getMiniflareWorkerOptions } = await tools();
  const { workerOptions } = unstable_getMiniflareWorkerOptions(WRANGLER_TOML);
  const consumers = workerOptions.queueConsumers as Record<string, { deadLetterQueue?: string }>;
  const [queue, consumer] = Object.entries(consumers)[0];
  const collector = {
    ...workerOptions,
    modules: true,
    modulesRoot: options.bundle,
    scriptPath: `${options.bundle}/index.js`,
  } as const;
  const variants = [];
  for (const [i, variant] of (options.variants ?? []).entries()) {
    let scriptPath: string = collector.scriptPath;
    if (variant.rejectingQueue) {
      scriptPath = `${options.bundle}/rejecting-queue-${i}.js`;
      await Deno.writeTextFile(scriptPath, REJECTING_QUEUE_ENTRY);
    }
    variants.push({
      ...collector,
      name: `collector-variant-${i}`,
      scriptPath,
      // The entry imports the bundle: a .js module, which Miniflare would otherwise load as CommonJS.
      modulesRules: [{ type: "ESModule" as const, include: ["**/*.js"] }, ...collector.modulesRules ?? []],
      routes: [`${variant.host}/*`],
      bindings: variant.vars,
      queueConsumers: {},
    });
  }
  const mf = new Miniflare({
    ...options.persist === undefined ? {} : { durableObjectsPersist: options.persist },
    handleRuntimeStdio(stdout: Readable, stderr: Readable) {
      stdout.on("data", (chunk: Uint8Array) => options.stdout(new TextDecoder().decode(chunk)));
      stderr.on("data", (chunk: Uint8Array) => options.stdout(new TextDecoder().decode(chunk)));
    },
    workers: [
      {
        ...collector,
        name: "collector",
        bindings: options.vars,
        queueConsumers: { [queue]: { ...consumer, maxBatchTimeout: 0.05, maxRetries: 2 } },
      },
      ...variants,
      {
        name: OBSERVER,
        modules: true,
        compatibilityDate: workerOptions.compatibilityDate,
        script: `export default {
          async queue(batch, env) {
            for (const message of batch.messages) {
              await env.${DEAD_LETTERS_KV}.put(message.id, JSON.stringify(message.body));
              message.ack();
            }
          },
        };`,
        kvNamespaces: [DEAD_LETTERS_KV],
        queueConsumers: { [consumer.deadLetterQueue!]: { maxBatchTimeout: 0.05 } },
      },
    ],
  });
  await mf.ready;
  return mf;
}

/** The part of a KV namespace the tests read. */
export interface KvReader {
  list(): Promise<{ keys: { name: string }[] }>;
  get(key: string): Promise<string | null>;
}

/** The KV namespace where the observer Worker records each dead-lettered message body by message id. */
export async function deadLetters(mf: Miniflare): Promise<KvReader> {
  return await mf.getKVNamespace(DEAD_LETTERS_KV, OBSERVER) as unknown as KvReader;
}

/** Calls `probe` every 50 ms until it returns a value other than `undefined`; fails after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
