/**
 * One node-redis connection that fails fast: it connects on first use, a
 * command sent while the server is unreachable rejects at once (no offline
 * queue, no waiting for a reconnection), every command has a timeout, and
 * connection errors are reported at most once per interval.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createClient, ErrorReply, RESP_TYPES } from "redis";
import type { DiagnosticLogger } from "../diagnostics.ts";
import type { RedisClientOptionsAlias } from "./_types.ts";

/** A command argument: text or bytes. */
export type Arg = string | Uint8Array;

/** The part of a node-redis client this package uses. */
interface Client {
  readonly isOpen: boolean;
  readonly isReady: boolean;
  connect(): Promise<unknown>;
  sendCommand<T>(args: readonly Arg[], options?: Record<string, unknown>): Promise<T>;
  multi(): Multi;
  close(): Promise<void>;
  destroy(): void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

interface Multi {
  addCommand(args: readonly Arg[]): Multi;
  exec(): Promise<unknown[]>;
}

/** Options of {@linkcode RedisConnection}. */
export interface ConnectionOptions {
  url?: string;
  clientOptions?: RedisClientOptionsAlias;
  /** How long connecting may take. @default 5000 */
  connectTimeoutMs?: number;
  /** How long a command may take (a blocking one: on top of its block time). @default 5000 */
  commandTimeoutMs?: number;
  logger: DiagnosticLogger;
  /** Names the connection in diagnostics. */
  label: string;
}

const BINARY = { [RESP_TYPES.BLOB_STRING]: Buffer };
/** How long connecting, or a command, may take unless the caller says. */
const DEFAULT_TIMEOUT_MS = 5_000;
/** After a failed connection attempt, calls fail with its error for this long before the next attempt. */
const RECONNECT_PAUSE_MS = 1_000;
/** Connection errors are reported at most once per this interval. */
const REPORT_INTERVAL_MS = 30_000;

/** node-redis takes text or a `Buffer`: a plain `Uint8Array` is viewed as one (no copy). */
function asArgument(arg: Arg): Arg {
  return typeof arg === "string" || Buffer.isBuffer(arg)
    ? arg
    : Buffer.from(arg.buffer, arg.byteOffset, arg.byteLength);
}

/** True for an error the server answered (a command error), as opposed to a connection problem. */
export function isReplyError(error: unknown): boolean {
  return error instanceof ErrorReply;
}

/** The URL without its credentials, for messages and stream identities. */
export function redactUrl(url: string | undefined): string {
  if (url === undefined) return "redis://localhost:6379";
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.toString().replace(/\/$/, "");
  } catch {
    return "(an unparsable Redis URL)";
  }
}

/** A lazily connected node-redis client that fails fast. */
export class RedisConnection {
  readonly #options: ConnectionOptions;
  #client: Client | undefined;
  #connecting: Promise<Client> | undefined;
  #failure: { at: number; error: unknown } | undefined;
  #everReady = false;
  #closed = false;
  #down = false;
  #lastReport = -Infinity;
  #suppressed = 0;

  constructor(options: ConnectionOptions) {
    this.#options = options;
  }

  /** The server, without credentials. */
  get server(): string {
    return redactUrl(this.#options.url);
  }

  /** A new connection with the same options (for blocking reads beside other commands). */
  duplicate(label: string): RedisConnection {
    return new RedisConnection({ ...this.#options, label });
  }

  #create(): Client {
    const { url, clientOptions, connectTimeoutMs = DEFAULT_TIMEOUT_MS } = this.#options;
    const socket = (clientOptions?.socket ?? {}) as Record<string, unknown>;
    const client = createClient({
      ...clientOptions,
      ...(url === undefined ? {} : { url }),
      RESP: 2,
      disableOfflineQueue: true,
      socket: {
        ...socket,
        connectTimeout: connectTimeoutMs,
        // The first connection fails at once (the caller retries); once connected, reconnect in the background.
        reconnectStrategy: (retries: number, cause: Error) =>
          this.#everReady && !this.#closed ? Math.min(50 * 2 ** retries, 2_000) : cause,
      },
    } as unknown as RedisClientOptionsAlias) as unknown as Client;
    client.on("error", (error) => this.#report(error));
    client.on("ready", () => {
      this.#everReady = true;
      if (this.#down) {
        this.#down = false;
        this.#options.logger.warn(`${this.#options.label}: connected to ${this.server} again`);
      }
    });
    return client;
  }

  #report(error: unknown): void {
    this.#down = true;
    if (this.#closed) return;
    const now = Date.now();
    if (now - this.#lastReport < REPORT_INTERVAL_MS) {
      this.#suppressed++;
      return;
    }
    const more = this.#suppressed > 0 ? ` (${this.#suppressed} more connection errors since the last report)` : "";
    this.#lastReport = now;
    this.#suppressed = 0;
    this.#options.logger.error(`${this.#options.label}: Redis connection error at ${this.server}${more}`, error);
  }

  /** The connected client; connects first if needed. Rejects at once while the server is unreachable. */
  client(): Promise<Client> {
    if (this.#closed) return Promise.reject(new Error(`${this.#options.label} is closed`));
    // While connecting, callers wait for it; once connected (even while reconnecting: commands then fail fast), the client.
    if (this.#connecting) return this.#connecting;
    const client = this.#client;
    if (client?.isOpen) return Promise.resolve(client);
    const failure = this.#failure;
    if (failure !== undefined && Date.now() - failure.at < RECONNECT_PAUSE_MS) return Promise.reject(failure.error);
    const connecting = (async () => {
      const next = this.#client ??= this.#create();
      try {
        await next.connect();
        this.#failure = undefined;
        return next;
      } catch (error) {
        this.#failure = { at: Date.now(), error };
        this.#report(error);
        throw error;
      } finally {
        this.#connecting = undefined;
      }
    })();
    this.#connecting = connecting;
    return connecting;
  }

  /**
   * Sends one command. `binary` returns bulk strings as `Buffer`s;
   * `blockMs` adds a blocking command's wait to the timeout.
   */
  async command<T>(args: readonly Arg[], options: { binary?: boolean; blockMs?: number } = {}): Promise<T> {
    const client = await this.client();
    return client.sendCommand<T>(args.map(asArgument), {
      timeout: (this.#options.commandTimeoutMs ?? DEFAULT_TIMEOUT_MS) + (options.blockMs ?? 0),
      ...(options.binary ? { typeMapping: BINARY } : {}),
    });
  }

  /** Runs the commands in one MULTI/EXEC transaction; resolves with their replies. */
  async transaction(commands: readonly (readonly Arg[])[]): Promise<unknown[]> {
    const client = await this.client();
    let multi = client.multi();
    for (const args of commands) multi = multi.addCommand(args.map(asArgument));
    return await multi.exec();
  }

  /** Closes the connection, waiting up to `timeoutMs` for commands in flight; later commands reject. */
  async close(timeoutMs = 2_000): Promise<void> {
    this.#closed = true;
    await this.#connecting?.catch(() => {});
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined || !client.isOpen) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), timeoutMs));
    try {
      const closed = await Promise.race([client.close().then(() => false, () => true), timedOut]);
      if (closed) client.destroy();
    } finally {
      clearTimeout(timer);
    }
  }
}
