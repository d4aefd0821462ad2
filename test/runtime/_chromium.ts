/**
 * What the headless-Chromium tests of this folder need, found once: Chromium
 * itself (`$CHROMIUM`, or Debian's `chromium` package) and the puppeteer-core
 * entry for Node.js from the dev workspace member's node_modules (dev/deno.json
 * lists it), and why a test skips when either is missing.
 *
 * @module
 */

/** The repository's root. */
export const ROOT = new URL("../../", import.meta.url);

/** Whether `path` is a regular file. */
export function isFile(path: string | URL): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** puppeteer-core's ESM entry, relative to a node_modules folder. */
export const PUPPETEER_ENTRY = "puppeteer-core/lib/esm/puppeteer/puppeteer-core.js";

/** Where Chromium is: `$CHROMIUM`, or Debian's package (`/usr/bin/chromium`, `/usr/bin/chromium-browser`); else undefined. */
export const chromium: string | undefined = [
  Deno.env.get("CHROMIUM"),
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
].find((path): path is string => path !== undefined && path !== "" && isFile(path));

/** The puppeteer-core entry in dev/node_modules (`deno install --config dev/deno.json` puts it there); it may be missing. */
export const devPuppeteer: URL = new URL(`dev/node_modules/${PUPPETEER_ENTRY}`, ROOT);

/**
 * Why the test `test` (its `import.meta.url`, or its file name) cannot run `what` (e.g. "the operator console
 * browser test"), or undefined when it can: no Chromium or, unless `puppeteer` is false (the test installs it
 * itself), no puppeteer-core in dev/node_modules. When it cannot, it says so on stderr, naming the test:
 * `<file>: skipping <what>: <reason>`.
 */
export function browserSkip(test: string, what: string, { puppeteer = true }: { puppeteer?: boolean } = {}):
  | string
  | undefined {
  const reason = chromium === undefined
    ? "no Chromium at $CHROMIUM or /usr/bin/chromium (Debian: apt-get install -y chromium)"
    : puppeteer && !isFile(devPuppeteer)
    ? "no puppeteer-core in dev/node_modules (deno install --config dev/deno.json)"
    : undefined;
  if (reason !== undefined) console.warn(`${test.split("/").at(-1)}: skipping ${what}: ${reason}`);
  return reason;
}
