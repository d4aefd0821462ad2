/**
 * Names for the Hono types the public API mentions. Hono documents them
 * itself (npm:hono); they are marked internal so that `deno doc --lint` does
 * not ask this package to document another package's types.
 *
 * @module
 */

import type { Context, Env, Hono, MiddlewareHandler } from "hono";

/**
 * Hono's request context (`Context` of npm:hono).
 *
 * @internal
 */
export type HonoContext = Context;

/**
 * A Hono app (`Hono` of npm:hono) with the environment `E`.
 *
 * @internal
 */
export type HonoApp<E extends Env> = Hono<E>;

/**
 * A Hono middleware (`MiddlewareHandler` of npm:hono) with the environment `E`.
 *
 * @internal
 */
export type HonoMiddleware<E extends Env> = MiddlewareHandler<E>;
