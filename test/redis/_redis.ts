/**
 * Real parts for the Redis tests: Debian's `redis-server` on a free loopback
 * port in a temporary directory, a raw client, and Debian's Python with
 * `avro` and `redis` as an independent oracle. A test that needs a part that
 * is not installed is ignored with a printed reason (`.ci/run` installs them:
 * `redis-server python3-avro python3-redis`).
 *
 * @module
 */

import { createClient, RESP_TYPES } from "redis";

/** A running `redis-server`. */
export interface RedisTestServer {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
  /** Stops the server; `start()` starts it again on the same port (no data is kept: `--save ""`). */
  kill(): Promise<void>;
  start(): Promise<void>;
}

function which(command: string, args: string[]): boolean {
  try {
    return new Deno.Command(command, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Whether `redis-server` is installed. */
export const HAVE_REDIS = which("redis-server", ["--version"]);

/** Debian's Python (with `avro` and `redis`), or undefined. */
export const PYTHON: string | undefined = ["/usr/bin/python3", "python3"].find((python) =>
  which(python, ["-c", "import avro.schema, avro.io, redis"])
);

if (!HAVE_REDIS) console.warn("redis-server is not installed (apt-get install redis-server): Redis tests are ignored");
if (PYTHON === undefined) {
  console.warn(
    "python3 with avro and redis is not installed (apt-get install python3-avro python3-redis): oracle tests are ignored",
  );
}

/** A loopback port that nothing listens on right now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function ping(port: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(new TextEncoder().encode("PING\r\n"));
        const buffer = new Uint8Array(64);
        const n = await conn.read(buffer);
        if (n !== null && new TextDecoder().decode(buffer.subarray(0, n)).startsWith("+PONG")) return;
      } finally {
        conn.close();
      }
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`redis-server did not answer on port ${port}`);
}

/** Starts `redis-server --port N --save "" --appendonly no --dir <tmp>` and waits until it answers. */
export async function startRedisServer(): Promise<RedisTestServer> {
  const dir = await Deno.makeTempDir({ prefix: "redis-test-" });
  let port = freePort();
  let child: Deno.ChildProcess | undefined;
  const spawn = async () => {
    for (let attempt = 0; attempt < 5; attempt++) {
      child = new Deno.Command("redis-server", {
        args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await ping(port, Date.now() + 5_000);
        return;
      } catch (error) {
        try {
          child.kill("SIGKILL");
        } catch {
          // gone
        }
        await child.status;
        child = undefined;
        if (attempt === 4) throw error;
        port = freePort(); // taken meanwhile
      }
    }
  };
  await spawn();
  const kill = async () => {
    const running = child;
    child = undefined;
    if (running === undefined) return;
    running.kill("SIGKILL");
    await running.status;
  };
  return {
    get url() {
      return `redis://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    kill,
    async start() {
      if (child !== undefined) return;
      child = new Deno.Command("redis-server", {
        args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      await ping(port, Date.now() + 5_000);
    },
    async stop() {
      await kill();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A raw node-redis client for assertions (RESP2, bulk strings as Buffers with `binary`). */
export interface RawClient {
  send<T = unknown>(args: (string | Uint8Array)[]): Promise<T>;
  sendBinary<T = unknown>(args: (string | Uint8Array)[]): Promise<T>;
  close(): Promise<void>;
}

const buffer = (arg: string | Uint8Array) => typeof arg === "string" ? arg : Buffer.from(arg);

/** Connects a raw client for the test's own commands. */
export async function rawClient(url: string): Promise<RawClient> {
  const client = createClient({ url, RESP: 2 });
  client.on("error", () => {});
  await client.connect();
  return {
    send: (args) => client.sendCommand(args.map(buffer)),
    sendBinary: (args) => client.sendCommand(args.map(buffer), { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } }),
    close: () => client.close(),
  };
}

/** Runs a Python script with `input` on its standard input; resolves with its standard output parsed as JSON. */
export async function python<T = unknown>(script: string, input: unknown = null): Promise<T> {
  if (PYTHON === undefined) throw new Error("no python3 with avro and redis");
  const child = new Deno.Command(PYTHON, {
    args: ["-c", script],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(input)));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const err = new TextDecoder().decode(stderr);
  if (code !== 0) throw new Error(`python failed (${code}):\n${err}`);
  return JSON.parse(new TextDecoder().decode(stdout));
}

/** Polls `check` every 20 ms until it returns true, or fails after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The Avro schema of the tracking-log signal, written out independently of the module under test. */
export const PYTHON_SCHEMA = `{
  "name": "CloudEvent", "type": "record", "namespace": "org.openedx.analytics.tracking.event.emitted.v1",
  "fields": [{"name": "tracking_log", "type": {"name": "TrackingLogData", "type": "record", "fields": [
    {"name": "name", "type": "string"}, {"name": "timestamp", "type": "string"},
    {"name": "data", "type": "string"}, {"name": "context", "type": "string"}]}}]
}`;
