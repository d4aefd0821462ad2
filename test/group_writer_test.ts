import assert from "node:assert/strict";
import { GroupWriter } from "../src/_group_writer.ts";

Deno.test("GroupWriter writes what is added in one tick, and while a write is in progress, as one batch each", async () => {
  const batches: number[][] = [];
  let release!: () => void;
  const writer = new GroupWriter<number>(async (items) => {
    batches.push(items);
    if (batches.length === 1) await new Promise<void>((resolve) => release = resolve);
  });
  const first = [writer.add(1), writer.add(2)];
  assert.equal(first[0], first[1], "one promise per batch");
  await new Promise((resolve) => setTimeout(resolve, 0));
  const second = [writer.add(3), writer.add(4), writer.add(5)];
  assert.equal(writer.pending, 5);
  release();
  await Promise.all([...first, ...second]);
  assert.deepEqual(batches, [[1, 2], [3, 4, 5]]);
  assert.equal(writer.pending, 0);
});

Deno.test("GroupWriter rejects every item of a failed batch, goes on with the next, and runs chores between batches", async () => {
  const order: string[] = [];
  let fail = true;
  const writer = new GroupWriter<string>((items) => {
    order.push(`write ${items.join(",")}`);
    if (fail) {
      fail = false;
      return Promise.reject(new Error("disk full"));
    }
    return Promise.resolve();
  });
  const failed = writer.add("a");
  writer.schedule(() => Promise.resolve(void order.push("sync")));
  await assert.rejects(failed, /disk full/);
  await writer.add("b");
  await writer.drained();
  assert.deepEqual(order, ["write a", "sync", "write b"]);
});
