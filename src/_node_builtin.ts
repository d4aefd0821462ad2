/**
 * Node.js built-in modules found at run time, without an `import` that a
 * browser bundler would have to resolve: `process.getBuiltinModule` exists in
 * Node.js ≥ 20.16, Deno 2 and Cloudflare Workers with `nodejs_compat`, and is
 * synchronous. Private module.
 *
 * @module
 */

type GetBuiltinModule = (id: string) => unknown;

/** The built-in module `id` (e.g. `node:fs/promises`), or `undefined` where the runtime has none. */
export function findNodeBuiltin<T>(id: string): T | undefined {
  const process = (globalThis as { process?: { getBuiltinModule?: GetBuiltinModule } }).process;
  if (typeof process?.getBuiltinModule !== "function") return undefined;
  try {
    return (process.getBuiltinModule(id) ?? undefined) as T | undefined;
  } catch {
    return undefined;
  }
}

/**
 * The built-in module `id`.
 *
 * @param who What needs it, for the error message, e.g. `LoggerBackend "tracking"`.
 * @throws {Error} If the runtime has no such module (a browser, Workers without `nodejs_compat`, Node.js < 20.16).
 */
export function nodeBuiltin<T>(id: string, who: string): T {
  const found = findNodeBuiltin<T>(id);
  if (found === undefined) {
    throw new Error(
      `${who} needs the Node.js module ${id}, which this runtime does not provide through process.getBuiltinModule ` +
        "(Node.js ≥ 20.16, Deno 2 and Cloudflare Workers with nodejs_compat do)",
    );
  }
  return found;
}
