import assert from "node:assert/strict";
import * as esbuild from "esbuild";

// `@edx/event-tracking/http` is the part of the collector that runs everywhere:
// bundled for Node.js 20 it must load (no `Deno` global, no Deno-only adapter)
// and answer through the app's `fetch`, as a Node.js server adapter calls it.
Deno.test("@edx/event-tracking/http bundled for Node.js 20 loads and its app answers 202", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await esbuild.build({
      entryPoints: [new URL("./_node_http_entry.ts", import.meta.url).pathname],
      outfile: `${dir}/entry.mjs`,
      bundle: true,
      format: "esm",
      platform: "node",
      target: "node20",
      logLevel: "error",
    });
    const bundle = await Deno.readTextFile(`${dir}/entry.mjs`);
    // Neither the Deno server nor hono/deno came along.
    assert.doesNotMatch(bundle, /Deno\.(serve|upgradeWebSocket)|hono\/dist\/adapter\/deno/);
    const run = await new Deno.Command("node", { args: [`${dir}/entry.mjs`], stdout: "piped", stderr: "piped" })
      .output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert.doesNotMatch(stderr, /Deno is not defined/);
    assert.equal(run.code, 0, stderr);
    const result = JSON.parse(new TextDecoder().decode(run.stdout));
    assert.equal(result.accepted.status, 202);
    assert.equal(result.accepted.body.accepted, 1);
    assert.equal(result.refused, 401);
    assert.deepEqual(result.events, [
      ["edx.ui.click", "/v1/events", result.events[0][2]],
      ["edx.course.list.viewed", "/courses", "req-1"],
    ]);
    assert.equal(typeof result.events[0][2], "string", "the collector's request scope has a request id");
  } finally {
    await esbuild.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
