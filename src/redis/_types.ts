/**
 * Names for the `redis` (node-redis) types the public API mentions. The
 * client documents them itself (npm:redis); they are marked internal so that
 * `deno doc --lint` does not ask this package to document another package's types.
 *
 * @module
 */

import type { RedisClientOptions } from "redis";

/**
 * node-redis's `RedisClientOptions` (`createClient`'s options).
 *
 * @internal
 */
export type RedisClientOptionsAlias = RedisClientOptions;
