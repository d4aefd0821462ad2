/**
 * A bounded load generator for the collector: a fixed number of requests,
 * a fixed concurrency, loopback only.
 *
 * @module
 */

/** What one load run did. */
export interface LoadResult {
  requests: number;
  events: number;
  accepted: number;
  /** Final statuses, one per request. */
  statuses: Record<number, number>;
  /** 503 answers that were retried after a pause, as a well-behaved client does. */
  retried: number;
  seconds: number;
  requestsPerSecond: number;
  eventsPerSecond: number;
}

/** Sends `requests` POSTs of `batchSize` events each, `concurrency` at a time. */
export async function runLoad(
  url: string,
  token: string,
  options: { requests: number; concurrency: number; batchSize: number },
): Promise<LoadResult> {
  const { requests, concurrency, batchSize } = options;
  const body = (n: number) =>
    JSON.stringify(
      batchSize === 1
        ? { name: "load.single", data: { n, page: "/courses/course-v1:edX+DemoX+Demo_Course/courseware" } }
        : { events: Array.from({ length: batchSize }, (_, i) => ({ name: "load.batch", data: { n, i } })) },
    );
  const statuses: Record<number, number> = {};
  let next = 0;
  let accepted = 0;
  let retried = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < requests) {
      const payload = body(next++);
      let response: Response;
      for (;;) {
        response = await fetch(`${url}/v1/events`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: payload,
        });
        if (response.status !== 503 || retried >= requests) break;
        retried++;
        await response.body?.cancel();
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      if (response.status === 202) {
        const { accepted: count } = await response.json();
        accepted += count;
      } else {
        await response.body?.cancel();
      }
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  return {
    requests,
    events: requests * batchSize,
    accepted,
    statuses,
    retried,
    seconds,
    requestsPerSecond: requests / seconds,
    eventsPerSecond: accepted / seconds,
  };
}
