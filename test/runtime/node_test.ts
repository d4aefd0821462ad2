import assert from "node:assert/strict";
import * as esbuild from "esbuild";

const WASM = new URL("../../wasm/regex_filter.wasm", import.meta.url);

interface Run {
  bundle: string;
  /** The modules the bundle imports (not bundled), e.g. `node:process`. */
  external: string[];
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Bundles `entry` (beside this file) to one ESM file for Node.js 20, puts the
 * committed `.wasm` beside it when asked, runs it with node and returns the
 * bundle and the run.
 */
async function bundleAndRun(
  entry: string,
  { args = [], wasmBeside = false, ...options }: esbuild.BuildOptions & { args?: string[]; wasmBeside?: boolean } = {},
): Promise<Run> {
  const dir = await Deno.makeTempDir();
  try {
    const result = await esbuild.build({
      metafile: true,
      entryPoints: [new URL(entry, import.meta.url).pathname],
      outfile: `${dir}/entry.mjs`,
      bundle: true,
      format: "esm",
      platform: "node",
      target: "node20",
      logLevel: "error",
      ...options,
    });
    if (wasmBeside) await Deno.copyFile(WASM, `${dir}/regex_filter.wasm`);
    const bundle = await Deno.readTextFile(`${dir}/entry.mjs`);
    const external = Object.values(result.metafile!.outputs).flatMap((output) =>
      output.imports.filter((i) => i.external).map((i) => i.path)
    );
    const run = await new Deno.Command("node", {
      args: [`${dir}/entry.mjs`, ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decoder = new TextDecoder();
    return { bundle, external, code: run.code, stdout: decoder.decode(run.stdout), stderr: decoder.decode(run.stderr) };
  } finally {
    await esbuild.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

function assertNodeVersion(): void {
  const node = new Deno.Command("node", { args: ["--version"], stdout: "piped" }).outputSync();
  const version = new TextDecoder().decode(node.stdout).trim();
  const [major, minor] = (/^v(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  // process.getBuiltinModule, through which the core finds AsyncLocalStorage and node:fs, came in 20.16.
  assert.ok(major > 20 || (major === 20 && minor >= 16), `Node.js 20.16 or later is needed, found ${version}`);
}

function assertRan(run: Run): void {
  assert.equal(run.code, 0, run.stderr);
  const result = JSON.parse(run.stdout);
  assert.deepEqual(result.matches, [true, true, false, true, false]);
  // Each event carries its own task's scope, whichever task finished first.
  assert.deepEqual(result.events.sort(), [
    ["edx.course.enrollment.activated", 1, 1],
    ["edx.course.enrollment.activated", 2, 2],
  ]);
}

// Node.js runs the library as users of a bundle would: one ESM file, with the
// WebAssembly core next to it, loaded by loadRegexWasm(URL).
Deno.test("the bundled library runs under Node.js: context scopes across await, RegexFilter's core read beside the bundle", async () => {
  assertNodeVersion();
  const run = await bundleAndRun("./_node_entry.ts", { wasmBeside: true });
  assertRan(run);
  // AsyncLocalStorage and node:fs are found at run time: the library imports no node: module (the entry imports
  // node:process for its argument).
  assert.deepEqual(run.external, ["node:process"]);
  assert.ok(!run.bundle.includes("AGFzbQ"), "no base64 copy of the .wasm is in the bundle");
});

Deno.test("a single-file Node.js bundle inlines the core with esbuild's binary loader and loads it from its bytes", async () => {
  const run = await bundleAndRun("./_node_entry_bytes.ts", { loader: { ".wasm": "binary" }, minify: true });
  assertRan(run);
});

Deno.test("a bundle that never loads the core says how to load it when a RegexFilter is built", async () => {
  const run = await bundleAndRun("./_node_entry.ts", { args: ["none"] });
  assert.notEqual(run.code, 0);
  assert.match(
    run.stderr,
    /Cannot build a RegexFilter: its WebAssembly core is not loaded \(cannot read file:.*regex_filter\.wasm: .*\)\. Call `await loadRegexWasm\(\)` first/,
  );
});
