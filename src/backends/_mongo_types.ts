/**
 * Names for the `mongodb` driver types the public API mentions. The driver
 * documents them itself (npm:mongodb); they are marked internal so that
 * `deno doc --lint` does not ask this package to document another package's types.
 *
 * @module
 */

import type { MongoClient, MongoClientOptions, ObjectId } from "mongodb";

/**
 * The driver's `MongoClient`.
 *
 * @internal
 */
export type DriverClient = MongoClient;

/**
 * The driver's `MongoClientOptions`.
 *
 * @internal
 */
export type DriverClientOptions = MongoClientOptions;

/**
 * The driver's (BSON) `ObjectId`.
 *
 * @internal
 */
export type DriverObjectId = ObjectId;
