import assert from "node:assert/strict";
import { pythonJsonDumps } from "../src/_python_json.ts";

Deno.test("pythonJsonDumps refuses a cycle at any depth, and nesting over 512 levels, naming what is wrong", () => {
  const self: Record<string, unknown> = { a: 1 };
  self.self = self;
  assert.throws(() => pythonJsonDumps(self), /Cannot write a cyclic structure as JSON/);
  const deep: Record<string, unknown> = {};
  let at = deep;
  for (let i = 0; i < 40; i++) at = (at.next = {}) as Record<string, unknown>;
  at.back = deep.next;
  assert.throws(() => pythonJsonDumps([deep]), /cyclic/);
  let nested: unknown = 1;
  for (let i = 0; i < 600; i++) nested = [nested];
  assert.throws(() => pythonJsonDumps(nested), /nested this deep/);
  // Shared (not cyclic) objects are written wherever they appear.
  const shared = { x: [1, 2.5] };
  assert.equal(
    pythonJsonDumps({ a: shared, b: [shared, undefined], c: undefined }),
    '{"a": {"x": [1, 2.5]}, "b": [{"x": [1, 2.5]}, null]}',
  );
});
