import assert from "node:assert/strict";
import * as esbuild from "esbuild";
import { HAVE_REDIS, startRedisServer } from "./_redis.ts";

const HAVE_NODE = (() => {
  try {
    return new Deno.Command("node", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
})();

// node-redis and avsc are CommonJS: the ESM bundle gives them a `require` for Node's built-in modules.
const BANNER =
  'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);';

Deno.test({
  name: "under Node.js (an esbuild bundle), the bus publishes and the consumer reads back",
  ignore: !HAVE_REDIS || !HAVE_NODE,
  async fn() {
    const server = await startRedisServer();
    const dir = await Deno.makeTempDir();
    try {
      await esbuild.build({
        entryPoints: [new URL("./_node_entry.ts", import.meta.url).pathname],
        outfile: `${dir}/entry.mjs`,
        bundle: true,
        format: "esm",
        platform: "node",
        target: "node20",
        banner: { js: BANNER },
        logLevel: "error",
      });
      const run = await new Deno.Command("node", {
        args: [`${dir}/entry.mjs`, server.url],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      assert.equal(run.code, 0, decoder.decode(run.stderr));
      const result = JSON.parse(decoder.decode(run.stdout));
      assert.equal(result.published, 1);
      assert.equal(result.metrics.delivered, 1);
      assert.equal(result.events[0].name, "node.event");
      assert.deepEqual(result.events[0].data, { é: 1 });
      assert.deepEqual(result.events[0].context, { user_id: 3 });
    } finally {
      await esbuild.stop();
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
