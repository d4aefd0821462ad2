/**
 * A router's child backends, kept in sorted name order with a counter set each.
 *
 * @module
 */

import type { Backend, CloseOptions } from "./backend.ts";
import { typeName } from "./diagnostics.ts";
import { type BackendMetrics, emptyMetrics, type MetricsSnapshot } from "./metrics.ts";

/** One child backend and what its parent counted for it. */
export interface Route {
  readonly name: string;
  readonly backend: Backend;
  readonly counters: BackendMetrics;
}

/** Child backends by name, in the order they are called (sorted by name, as the reference does). */
export class Routes {
  #list: Route[] = [];

  /** The routes in call order. Replaced, never mutated, so a loop over it is safe during registration. */
  get list(): readonly Route[] {
    return this.#list;
  }

  /** The route of that name, if any. */
  get(name: string): Route | undefined {
    return this.#list.find((route) => route.name === name);
  }

  /** The backends by name, in call order. */
  get backends(): ReadonlyMap<string, Backend> {
    return new Map(this.#list.map((route) => [route.name, route.backend]));
  }

  /** Registers every backend of an options object or Map. */
  registerAll(owner: string, backends: unknown): void {
    if (typeof backends !== "object" || backends === null || Array.isArray(backends)) {
      throw new TypeError(
        `Cannot create ${owner}: 'backends' must be an object or Map of name to backend, got ${typeName(backends)}`,
      );
    }
    const entries = backends instanceof Map ? [...backends] : Object.entries(backends);
    for (const [name, backend] of entries) this.register(name, backend);
  }

  /**
   * Adds a backend, or replaces the one of that name in place.
   *
   * @throws {TypeError} If `backend` has no callable `send` method.
   */
  register(name: string, backend: Backend): void {
    if (typeof name !== "string") {
      throw new TypeError(`Cannot register backend: its name must be a string, got ${typeName(name)}`);
    }
    if (typeof (backend as Backend | null)?.send !== "function") {
      throw new TypeError(`Backend ${typeName(backend)} does not have a callable "send" method`);
    }
    const route: Route = { name, backend, counters: emptyMetrics() };
    const list = this.#list.slice();
    const index = list.findIndex((r) => r.name === name);
    if (index === -1) {
      list.push(route);
      list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } else {
      list[index] = route;
    }
    this.#list = list;
  }

  /**
   * Adds each child's metrics under `path/<name>`: its own, when it counts
   * itself (with at least the failures its parent saw); otherwise the parent's count.
   */
  collectMetrics(path: string, into: MetricsSnapshot): void {
    for (const route of this.#list) {
      const childPath = `${path}/${route.name}`;
      if (typeof route.backend.collectMetrics === "function") {
        route.backend.collectMetrics(childPath, into);
        const child = into[childPath];
        if (child && child.failed < route.counters.failed) child.failed = route.counters.failed;
      } else {
        into[childPath] = { ...route.counters };
      }
    }
  }

  /** The highest saturation among the backends that report one. */
  saturation(): number {
    let highest = 0;
    for (const route of this.#list) {
      const value = route.backend.saturation?.() ?? 0;
      if (value > highest) highest = value;
    }
    return highest;
  }

  /**
   * Flushes, or closes, every backend at once (a backend without `close` is
   * flushed); returns the failures by backend name.
   */
  async each(method: "flush" | "close", options?: CloseOptions): Promise<{ name: string; error: unknown }[]> {
    const list = this.#list;
    const results = await Promise.allSettled(
      list.map(({ backend }) =>
        method === "close" && backend.close !== undefined ? backend.close(options) : backend.flush?.()
      ),
    );
    const failures: { name: string; error: unknown }[] = [];
    results.forEach((result, i) => {
      if (result.status === "rejected") failures.push({ name: list[i].name, error: result.reason });
    });
    return failures;
  }
}
