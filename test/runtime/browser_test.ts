/**
 * The core in a browser: bundled by esbuild for the browser (minified, from an
 * entry that imports only `Tracker` and `InMemoryBackend`), measured, and run
 * in headless Chromium (Debian's `chromium` package) driven by puppeteer-core
 * under Node.js. A second bundle adds RegexFilter, whose WebAssembly core the
 * page fetches with `loadRegexWasm(url)`.
 *
 * @module
 */

import assert from "node:assert/strict";
import * as esbuild from "esbuild";
import { browserSkip, chromium, devPuppeteer, isFile, PUPPETEER_ENTRY, ROOT } from "./_chromium.ts";

/** The size budget of the core's minified browser bundle (issue 9). */
const CORE_BUDGET = 50_000;
const HERE = new URL("./", import.meta.url);

/** Bundles one entry beside this file for the browser, minified; returns the code and what went into it. */
async function bundleForBrowser(entry: string): Promise<{ code: string; inputs: Record<string, number> }> {
  try {
    const result = await esbuild.build({
      entryPoints: [new URL(entry, HERE).pathname],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: true,
      metafile: true,
      logLevel: "silent",
    });
    const inputs: Record<string, number> = {};
    for (const output of Object.values(result.metafile.outputs)) {
      for (const [path, { bytesInOutput }] of Object.entries(output.inputs)) inputs[path] = bytesInOutput;
    }
    return { code: result.outputFiles[0].text, inputs };
  } finally {
    await esbuild.stop();
  }
}

function biggest(inputs: Record<string, number>, n = 8): string {
  return Object.entries(inputs).sort((a, b) => b[1] - a[1]).slice(0, n).map(([path, bytes]) => `${bytes} ${path}`)
    .join(", ");
}

let coreBundle: ReturnType<typeof bundleForBrowser> | undefined;
/** The core's browser bundle, built once for both tests. */
const bundleCore = () => coreBundle ??= bundleForBrowser("./_browser_core.ts");

Deno.test(`Tracker + InMemoryBackend bundle for the browser, minified, in at most ${CORE_BUDGET} bytes`, async () => {
  const core = await bundleCore();
  const size = new TextEncoder().encode(core.code).length;
  console.log(
    `core browser bundle: ${size} bytes minified (budget ${CORE_BUDGET}); largest inputs: ${biggest(core.inputs, 5)}`,
  );
  assert.ok(size <= CORE_BUDGET, `the core bundle is ${size} bytes; largest inputs: ${biggest(core.inputs)}`);
  // Nothing of RegexFilter, its translator or its WebAssembly, and no node: module to resolve.
  const regexModules = Object.keys(core.inputs).filter((path) =>
    /processors\/(regex_filter|_regex|_python)/.test(path)
  );
  assert.deepEqual(regexModules.filter((path) => core.inputs[path] > 0), []);
  assert.ok(!core.code.includes("AGFzbQ"), "no base64 WebAssembly in the bundle");
  // No node: import for a bundler to resolve (`getBuiltinModule("node:async_hooks")` is a string, looked up at run time).
  assert.doesNotMatch(core.code, /(?:\bfrom|\bimport|\brequire)\s*\(?\s*["']node:/);
});

/**
 * The puppeteer-core entry for Node.js: from the dev workspace member's
 * node_modules (dev/deno.json lists it), else installed with npm into `tmp`.
 */
async function findPuppeteer(tmp: string): Promise<string> {
  if (isFile(devPuppeteer)) return devPuppeteer.href;
  const npm = await new Deno.Command("npm", {
    args: ["install", "--prefix", tmp, "--no-audit", "--no-fund", "--ignore-scripts", "puppeteer-core@24"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(npm.code, 0, `npm install puppeteer-core@24 failed: ${new TextDecoder().decode(npm.stderr)}`);
  return new URL(`file://${tmp}/node_modules/${PUPPETEER_ENTRY}`).href;
}

// Only Chromium is required: puppeteer-core, when dev/node_modules lacks it, is installed into a temporary folder.
const skip = browserSkip(import.meta.url, "the headless Chromium test", { puppeteer: false });

interface PageResults {
  userAgent: string;
  errors: string[];
  results: {
    core: { ok?: CoreResults; error?: string };
    regex: { ok?: RegexResults; error?: string };
  };
}

interface CoreResults {
  result: string;
  hasProcess: string;
  events: [string, Record<string, unknown>, unknown][];
  ids: string[];
  timestamps: string[];
}

interface RegexResults {
  before: string;
  matches: boolean[];
  events: [string, Record<string, unknown>][];
}

Deno.test({
  name:
    "the core runs in headless Chromium: context() scopes, withContext views, and RegexFilter after loadRegexWasm()",
  ignore: skip !== undefined,
}, async () => {
  const core = await bundleCore();
  const regex = await bundleForBrowser("./_browser_regex.ts");
  const files: Record<string, [BodyInit, string]> = {
    "/": [await Deno.readTextFile(new URL("_browser_page.html", HERE)), "text/html; charset=utf-8"],
    "/core.js": [core.code, "text/javascript"],
    "/regex.js": [regex.code, "text/javascript"],
    "/regex_filter.wasm": [await Deno.readFile(new URL("wasm/regex_filter.wasm", ROOT)), "application/wasm"],
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const path = new URL(request.url).pathname;
    if (path === "/favicon.ico") return new Response(null, { status: 204 });
    const file = files[path];
    return file
      ? new Response(file[0], { headers: { "content-type": file[1] } })
      : new Response("not found", { status: 404 });
  });
  const tmp = await Deno.makeTempDir({ prefix: "event-tracking-browser-" });
  try {
    const puppeteer = await findPuppeteer(tmp);
    const run = await new Deno.Command("node", {
      args: [
        new URL("_browser_driver.mjs", HERE).pathname,
        puppeteer,
        chromium!,
        `http://127.0.0.1:${server.addr.port}/`,
      ],
      stdout: "piped",
      stderr: "piped",
      env: { HOME: tmp },
    }).output();
    const text = new TextDecoder();
    assert.equal(run.code, 0, `the driver failed:\n${text.decode(run.stdout)}\n${text.decode(run.stderr)}`);
    const page: PageResults = JSON.parse(text.decode(run.stdout).trim().split("\n").at(-1)!);
    console.log(`ran in ${page.userAgent}; RegexFilter browser bundle: ${regex.code.length} bytes minified`);
    assert.deepEqual(page.errors, []);
    assert.equal(page.results.core.error, undefined);
    const result = page.results.core.ok!;
    assert.equal(result.hasProcess, "undefined", "a real browser: no process global, hence no AsyncLocalStorage");
    assert.equal(result.result, "done");
    const page_ = { page: "outline" };
    assert.deepEqual(result.events, [
      ["edx.ui.lms.outline.loaded", page_, {}],
      ["sync.inside", { ...page_, user_id: 7 }, { n: 1 }],
      ["sync.nested", { ...page_, user_id: 8, course_id: "course-v1:edX+DemoX+Demo_Course" }, {}],
      ["sync.after", page_, {}],
      ["async.before_await", { ...page_, user_id: 9 }, {}],
      // Documented: without AsyncLocalStorage a context() scope does not carry across await.
      ["async.after_await", page_, {}],
      ["view.after_await", { ...page_, user_id: 10, i: 1 }, {}],
      ["view.after_await", { ...page_, user_id: 10, i: 2 }, {}],
      ["no.scope", {}, {}],
    ]);
    assert.equal(new Set(result.ids).size, result.ids.length);
    for (const id of result.ids) {
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    for (const t of result.timestamps) assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    assert.equal(page.results.regex.error, undefined);
    const filter = page.results.regex.ok!;
    assert.match(
      filter.before,
      /Cannot build a RegexFilter: its WebAssembly core is not loaded .*Call `await loadRegexWasm\(\)`/,
    );
    assert.deepEqual(filter.matches, [true, true, false, true, false, false]);
    assert.deepEqual(filter.events, [
      ["edx.course.enrollment.activated", { user_id: 1 }],
      ["problem_check", { user_id: 1 }],
    ]);
  } finally {
    await server.shutdown();
    await Deno.remove(tmp, { recursive: true });
  }
});
