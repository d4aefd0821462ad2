import assert from "node:assert/strict";
import * as v from "valibot";
import { isHttpException } from "../../src/http/errors.ts";
import {
  ClientGone,
  eventsSchema,
  parseEvents,
  plainlyValidEvents,
  readBody,
  resolveLimits,
} from "../../src/http/validate.ts";

const limits = resolveLimits({ maxEventBytes: 2_000, maxBatchSize: 5 });
const schema = eventsSchema(limits);

const nested = (depth: number): unknown => depth === 0 ? 1 : { x: nested(depth - 1) };

/** Bodies the schema accepts, and that need no exact measuring: the fast path must take each as it is. */
const plain: unknown[] = [
  { name: "a" },
  { name: "a", data: { x: [1, "two", null, true, { y: 2.5 }] } },
  { name: "a", data: null },
  { name: "a", data: "text" },
  { name: "a", context: { course_id: "c1" } },
  { name: "a".repeat(256) },
  { name: "é🎉", data: { s: "ünïcødé 🎉" } },
  { name: "a", data: nested(32) },
  { events: [{ name: "a" }, { name: "b", data: { i: 1 }, context: {} }] },
  { events: Array.from({ length: 5 }, (_, i) => ({ name: `e${i}` })) },
];

/** Bodies the fast path must leave to the schema: wrong in some way, or to be measured exactly. */
const other: unknown[] = [
  null,
  [],
  "text",
  42,
  {},
  { name: "" },
  { name: "a".repeat(257) },
  { name: 1 },
  { name: "a", extra: 1 },
  { name: "a", context: [1] },
  { name: "a", context: null },
  { name: "a", context: "c" },
  { name: "a", data: nested(33) },
  { name: "a", context: nested(33) },
  { name: "a", data: "x".repeat(340) }, // may be over 2,000 bytes by the bound: measured by the schema
  { name: "a", data: "x".repeat(3_000) },
  { events: [] },
  { events: {} },
  { events: [{ name: "a" }], other: 1 },
  { events: Array.from({ length: 6 }, () => ({ name: "a" })) },
  { events: [{ name: "a" }, null] },
  { events: [{ name: "a" }, { name: "" }] },
  JSON.parse('{"name":"a","__proto__":{"x":1}}'),
];

Deno.test("plainlyValidEvents takes only bodies the schema accepts, with the schema's output", () => {
  for (const body of plain) {
    const fast = plainlyValidEvents(body, limits);
    const slow = v.safeParse(schema, body);
    assert.ok(slow.success, `the schema refuses ${JSON.stringify(body)}`);
    assert.notEqual(fast, undefined, `the fast path refuses ${JSON.stringify(body)}`);
    assert.deepEqual(fast, slow.output);
  }
  for (const body of other) {
    assert.equal(plainlyValidEvents(body, limits), undefined, `the fast path takes ${JSON.stringify(body)}`);
  }
});

Deno.test("parseEvents words the same 400 whichever path a body takes", () => {
  assert.deepEqual(parseEvents('{"name":"a","data":{"x":1}}', limits), [{ name: "a", data: { x: 1 } }]);
  // Measured exactly: 340 characters is within 2,000 bytes, 3,000 is not.
  assert.equal(parseEvents(JSON.stringify({ name: "a", data: "x".repeat(340) }), limits).length, 1);
  assert.throws(
    () =>
      parseEvents(
        JSON.stringify({ events: [{ name: "a" }, { name: "" }, { name: "b", data: "x".repeat(3_000) }] }),
        limits,
      ),
    (error) => {
      assert.ok(isHttpException(error));
      assert.equal(error.status, 400);
      return true;
    },
  );
});

const post = (body: BodyInit, headers: Record<string, string> = {}) =>
  new Request("http://collector/v1/events", { method: "POST", body, headers });

function streamOf(...chunks: (Uint8Array | Error)[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    pull(controller) {
      const chunk = chunks.shift();
      if (chunk === undefined) controller.close();
      else if (chunk instanceof Error) controller.error(chunk);
      else controller.enqueue(chunk);
    },
  });
}

const bytes = (text: string) => new TextEncoder().encode(text);
const refusedWith = (status: number) => (error: unknown) => isHttpException(error) && error.status === status;

Deno.test("readBody with a Content-Length reads the body whole, within the limit and as UTF-8", async () => {
  assert.equal(await readBody(post('{"name":"é"}', { "content-length": "13" }), 1024), '{"name":"é"}');
  await assert.rejects(readBody(post("x".repeat(2048), { "content-length": "2048" }), 1024), refusedWith(413));
  // A declared length under the limit does not let a longer body through.
  await assert.rejects(readBody(post("x".repeat(2048), { "content-length": "10" }), 1024), refusedWith(413));
  await assert.rejects(
    readBody(post(new Uint8Array([0x7b, 0xff, 0x7d]), { "content-length": "3" }), 1024),
    refusedWith(400),
  );
  await assert.rejects(
    readBody(post(streamOf(bytes('{"na'), new Error("connection reset")), { "content-length": "100" }), 1024),
    ClientGone,
  );
});

Deno.test("readBody without a Content-Length reads chunk by chunk and stops at the limit", async () => {
  assert.equal(await readBody(post(streamOf(bytes('{"name":'), bytes('"a"}'))), 1024), '{"name":"a"}');
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled++;
      controller.enqueue(new Uint8Array(512));
    },
  });
  await assert.rejects(readBody(post(endless), 1024), refusedWith(413));
  assert.ok(pulled <= 4, `read ${pulled} chunks of 512 bytes for a limit of 1,024`);
  await assert.rejects(readBody(post(streamOf(new Uint8Array([0xc3]))), 1024), refusedWith(400));
  await assert.rejects(readBody(post(streamOf(bytes("{"), new Error("connection reset"))), 1024), ClientGone);
});
