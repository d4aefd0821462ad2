import assert from "node:assert/strict";
import * as esbuild from "esbuild";

/** Bundles test/runtime/_node_entry.ts to one ESM file, runs it with node, and returns the bundle and the run. */
async function bundleAndRun(options: esbuild.BuildOptions = {}) {
  const dir = await Deno.makeTempDir();
  try {
    await esbuild.build({
      entryPoints: [new URL("./_node_entry.ts", import.meta.url).pathname],
      outfile: `${dir}/entry.mjs`,
      bundle: true,
      format: "esm",
      platform: "node",
      target: "node20",
      logLevel: "error",
      ...options,
    });
    const bundle = await Deno.readTextFile(`${dir}/entry.mjs`);
    const run = await new Deno.Command("node", { args: [`${dir}/entry.mjs`], stdout: "piped", stderr: "piped" })
      .output();
    const decoder = new TextDecoder();
    return { bundle, code: run.code, stdout: decoder.decode(run.stdout), stderr: decoder.decode(run.stderr) };
  } finally {
    await esbuild.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

// Node.js runs the library as users of the npm build would: bundled to one
// ESM file, with the WebAssembly core compiled from the committed bytes.
Deno.test("the bundled library runs under Node.js: context scopes across await and RegexFilter's WebAssembly core", async () => {
  const node = new Deno.Command("node", { args: ["--version"], stdout: "piped" }).outputSync();
  const major = Number(/^v(\d+)/.exec(new TextDecoder().decode(node.stdout))?.[1]);
  assert.ok(major >= 20, `Node.js 20 or later is needed, found ${major}`);
  const run = await bundleAndRun();
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  assert.deepEqual(result.matches, [true, true, false, true, false]);
  // Each event carries its own task's scope, whichever task finished first.
  assert.deepEqual(result.events.sort(), [
    ["edx.course.enrollment.activated", 1, 1],
    ["edx.course.enrollment.activated", 2, 2],
  ]);
});

Deno.test("a bundle that defines EDX_EVENT_TRACKING_EMBEDDED_WASM=false leaves the embedded bytes out and says so", async () => {
  const run = await bundleAndRun({ minify: true, define: { EDX_EVENT_TRACKING_EMBEDDED_WASM: "false" } });
  assert.ok(!run.bundle.includes("AGFzbQ"), "the base64 of the .wasm is not in the bundle");
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /no embedded WebAssembly; call useRegexWasmModule\(\) first/);
});
