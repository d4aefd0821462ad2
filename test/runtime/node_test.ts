import assert from "node:assert/strict";
import * as esbuild from "esbuild";

// Node.js runs the library as users of the npm build would: bundled to one
// ESM file, with the WebAssembly core compiled from the committed bytes.
Deno.test("the bundled library runs under Node.js: context scopes across await and RegexFilter's WebAssembly core", async () => {
  const node = new Deno.Command("node", { args: ["--version"], stdout: "piped" }).outputSync();
  const major = Number(/^v(\d+)/.exec(new TextDecoder().decode(node.stdout))?.[1]);
  assert.ok(major >= 20, `Node.js 20 or later is needed, found ${major}`);
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
    });
    const run = await new Deno.Command("node", { args: [`${dir}/entry.mjs`], stdout: "piped", stderr: "piped" })
      .output();
    assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
    const result = JSON.parse(new TextDecoder().decode(run.stdout));
    assert.deepEqual(result.matches, [true, true, false, true, false]);
    // Each event carries its own task's scope, whichever task finished first.
    assert.deepEqual(result.events.sort(), [
      ["edx.course.enrollment.activated", 1, 1],
      ["edx.course.enrollment.activated", 2, 2],
    ]);
  } finally {
    await esbuild.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bundle that defines EDX_EVENT_TRACKING_EMBEDDED_WASM=false leaves the embedded bytes out and says so", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await esbuild.build({
      entryPoints: [new URL("./_node_entry.ts", import.meta.url).pathname],
      outfile: `${dir}/entry.mjs`,
      bundle: true,
      minify: true,
      format: "esm",
      platform: "node",
      target: "node20",
      define: { EDX_EVENT_TRACKING_EMBEDDED_WASM: "false" },
      logLevel: "error",
    });
    const bundle = await Deno.readTextFile(`${dir}/entry.mjs`);
    assert.ok(!bundle.includes("AGFzbQ"), "the base64 of the .wasm is not in the bundle");
    const run = await new Deno.Command("node", { args: [`${dir}/entry.mjs`], stdout: "piped", stderr: "piped" })
      .output();
    assert.notEqual(run.code, 0);
    assert.match(new TextDecoder().decode(run.stderr), /no embedded WebAssembly; call useRegexWasmModule\(\) first/);
  } finally {
    await esbuild.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
