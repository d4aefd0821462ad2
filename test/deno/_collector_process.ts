/**
 * Runs `deno task start`'s server (src/deno/serve.ts) as a process of its own,
 * in its own process group, as an operator would: for crash and shutdown tests.
 *
 * @module
 */

const SERVE = new URL("../../src/deno/serve.ts", import.meta.url).pathname;

/** A collector process. */
export interface CollectorProcess {
  /** Its address, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  /** The process (and group) id. */
  readonly pid: number;
  /** Resolves with the exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  /** What it wrote to standard error so far. */
  stderr(): string;
}

/**
 * Starts the collector with `env` added to this environment (less any
 * collector variable of its own), and waits until it listens. `setsid` makes
 * it the leader of a new process group, so that a test can kill the whole group.
 */
export async function startCollectorProcess(env: Record<string, string>): Promise<CollectorProcess> {
  const inherited = Deno.env.toObject();
  for (const name of Object.keys(inherited)) {
    if (/^(EVENT_TRACKING_|MONGODB_URI$|PORT$)/.test(name)) delete inherited[name];
  }
  const child = new Deno.Command("setsid", {
    args: [Deno.execPath(), "run", "--allow-all", SERVE],
    clearEnv: true,
    env: { ...inherited, PORT: "0", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const { promise: listening, resolve, reject } = Promise.withResolvers<string>();
  const timer = setTimeout(() => reject(new Error(`The collector did not start within 30 s:\n${text}`)), 30_000);
  (async () => {
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk, { stream: true });
      const match = /listening on (http:\/\/\S+)/.exec(text);
      if (match) resolve(match[1]);
    }
    reject(new Error(`The collector exited before listening:\n${text}`));
  })();
  try {
    const url = await listening;
    return { url, pid: child.pid, status: child.status, stderr: () => text };
  } catch (error) {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    await child.status;
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** The JSON lines of a file, each parsed (a torn or malformed line fails the test). */
export async function readJsonLines(path: string): Promise<Record<string, unknown>[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  if (text !== "" && !text.endsWith("\n")) throw new Error(`${path} ends with a torn line`);
  return text.split("\n").filter((line) => line !== "").map((line, i) => {
    try {
      return JSON.parse(line);
    } catch {
      throw new Error(`${path}: line ${i + 1} is not JSON: ${line.slice(0, 200)}`);
    }
  });
}
