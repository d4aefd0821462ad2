/**
 * The one walk of a routing tree: every node at any depth, with its path, for
 * the lookups that need the whole tree (dead-letter replay, the bus a
 * collector serves).
 *
 * @module
 */

import type { Backend } from "./backend.ts";

/** A node of the routing tree, as {@linkcode walkTree} yields it. */
export interface TreeNode {
  /** Its place in the tree, as in metrics: `root/<name>/<nested name>`. */
  readonly path: string;
  /** Its name in its parent. */
  readonly name: string;
  /** The backend itself. */
  readonly backend: Backend;
}

function childrenOf(backend: Backend): ReadonlyMap<string, Backend> | undefined {
  const children = (backend as { backends?: unknown }).backends;
  return children instanceof Map ? children : undefined;
}

/**
 * Every backend below `backends`, depth first in call order: a router's
 * backends, an async branch's nested backends and an event bus's consumer
 * backends (each of them exposes `backends`).
 *
 * @example Find every async branch of a tracker
 * ```ts
 * import { AsyncRoutingBackend, InMemoryBackend, RoutingBackend, Tracker, walkTree } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const tracker = new Tracker({
 *   backends: {
 *     logs: new RoutingBackend({ backends: { queue: new AsyncRoutingBackend({ backends: { m: new InMemoryBackend() } }) } }),
 *   },
 * });
 * const paths = [...walkTree(tracker.backends)]
 *   .filter((node) => node.backend instanceof AsyncRoutingBackend)
 *   .map((node) => node.path);
 * assert.deepEqual(paths, ["root/logs/queue"]);
 * await tracker.close();
 * ```
 */
export function* walkTree(backends: ReadonlyMap<string, Backend>, path = "root"): Generator<TreeNode> {
  for (const [name, backend] of backends) {
    const node: TreeNode = { path: `${path}/${name}`, name, backend };
    yield node;
    const children = childrenOf(backend);
    if (children !== undefined) yield* walkTree(children, node.path);
  }
}
