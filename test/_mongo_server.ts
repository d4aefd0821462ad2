/**
 * A MongoDB server for the Mongo tests and benchmark: the one `MONGODB_URI`
 * names when it is set, otherwise congodb (`@push.rocks/smartmongo`'s
 * wire-protocol server) run in a child Deno process on a free loopback port.
 *
 * A child process keeps the server's sockets and timers out of the test
 * process (so Deno's sanitizers see only the backend's), gives it its own
 * core, and makes a restart a real restart: the process exits and a new one
 * loads the data that the old one saved (`storage: "memory", persistPath`).
 *
 * Run as a script it is that child: `deno run … _mongo_server.ts <port> [persistPath]`.
 * It prints `CONGODB_READY <port>` once the server answers, and stops the
 * server (saving its data) when its standard input closes.
 *
 * @module
 */

import { MongoClient } from "mongodb";

/** A running test server. */
export interface MongoTestServer {
  /** The connection string. */
  readonly uri: string;
  /** True if this is the server `MONGODB_URI` names (a real mongod, presumably): it cannot be restarted. */
  readonly external: boolean;
  /**
   * Stops the server (it saves its data), waits `downtimeMs`, and starts it
   * again on the same port with that data.
   *
   * @throws {Error} If the server is external.
   */
  restart(downtimeMs?: number): Promise<void>;
  /** Stops the server (a no-op for an external one). */
  stop(): Promise<void>;
}

/** Options of {@linkcode startMongoServer}. */
export interface StartMongoServerOptions {
  /** Keep the data across restarts in this JSON file (congodb only). */
  persistPath?: string;
  /** Ignore `MONGODB_URI` and start congodb anyway. @default false */
  forceCongo?: boolean;
}

const READY = "CONGODB_READY";
const START_TIMEOUT_MS = 30_000;

/** A loopback port that nothing listens on right now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A random database name for one test, as the reference's integration test does. */
export function testDatabaseName(): string {
  return `test_eventtracking_${crypto.randomUUID().replaceAll("-", "")}`;
}

/** Starts congodb (or returns the `MONGODB_URI` server) and waits until it answers a ping. */
export async function startMongoServer(options: StartMongoServerOptions = {}): Promise<MongoTestServer> {
  const external = options.forceCongo ? undefined : Deno.env.get("MONGODB_URI");
  if (external) {
    await ping(external);
    return {
      uri: external,
      external: true,
      restart() {
        return Promise.reject(new Error("Cannot restart the external server that MONGODB_URI names"));
      },
      stop: () => Promise.resolve(),
    };
  }
  const port = freePort();
  const uri = `mongodb://127.0.0.1:${port}/?directConnection=true`;
  let child = await spawn(port, options.persistPath);
  await ping(uri);
  return {
    uri,
    external: false,
    async restart(downtimeMs = 0) {
      await child.stop();
      if (downtimeMs > 0) await new Promise((resolve) => setTimeout(resolve, downtimeMs));
      child = await spawn(port, options.persistPath);
    },
    stop: () => child.stop(),
  };
}

interface Child {
  stop(): Promise<void>;
}

async function spawn(port: number, persistPath: string | undefined): Promise<Child> {
  const args = [
    "run",
    "--quiet",
    "--allow-net=127.0.0.1",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    // The dev tools' import map and lockfile (the congodb package is not a runtime dependency).
    "--config",
    new URL("../dev/deno.json", import.meta.url).pathname,
    new URL(import.meta.url).pathname,
    String(port),
  ];
  if (persistPath !== undefined) args.push(persistPath);
  const process = new Deno.Command(Deno.execPath(), { args, stdin: "piped", stdout: "piped", stderr: "inherit" })
    .spawn();
  const stdin = process.stdin.getWriter();
  const lines = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  // The package prints `__# debug:` lines on import: wait for our own line.
  let buffered = "";
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!buffered.split("\n").some((line) => line.startsWith(`${READY} ${port}`))) {
    if (Date.now() > deadline) {
      process.kill();
      throw new Error(`Cannot start congodb on port ${port}: no ready line within ${START_TIMEOUT_MS} ms`);
    }
    const { value, done } = await lines.read();
    if (done) {
      const status = await process.status;
      throw new Error(`Cannot start congodb on port ${port}: the server exited with code ${status.code}`);
    }
    buffered += value;
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  const drained = (async () => {
    while (!(await lines.read()).done) { /* discard */ }
  })();
  let stopping: Promise<void> | undefined;
  return {
    stop() {
      return stopping ??= (async () => {
        await stdin.close();
        await drained;
        await process.status;
      })();
    },
  };
}

async function ping(uri: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 1_000 });
    try {
      await client.db("admin").command({ ping: 1 });
      return;
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`MongoDB at ${uri} does not answer`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      await client.close();
    }
  }
}

async function serve(port: number, persistPath: string | undefined): Promise<void> {
  // The congodb entry point only: the package root also loads mongodb-memory-server and more.
  const { CongoServer } = await import("@push.rocks/smartmongo/dist_ts/congodb/index.js");
  const server = new CongoServer({ port, host: "127.0.0.1", storage: "memory", persistPath });
  await server.start();
  console.log(`${READY} ${port}`);
  // Standard input closing (the parent's stop(), or the parent dying) stops the server, which saves its data.
  for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
  await server.stop();
  Deno.exit(0);
}

if (import.meta.main) {
  const [port, persistPath] = Deno.args;
  await serve(Number(port), persistPath);
}
