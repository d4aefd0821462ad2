// Drives the operator console (/console) in headless Chromium with puppeteer-core, for
// test/runtime/console_browser_test.ts (the Deno collector) and console_worker_browser_test.ts (the Worker in
// Miniflare). The test owns the collector and posts the events: when the driver needs events it prints
// `{"need": "<step>"}` on stdout and reads the test's answer (the counts to expect) as one JSON line on stdin.
// Its last stdout line is the result, as JSON.
//   node _console_driver.mjs <puppeteer-core entry URL> <chromium path> <JSON {url, token, screenshot}>
// The answer to "second" may hold `afterReplay`: the dead-letter count the failing branch shows again once its
// replayed letters have failed again, when the replay only queues them (a Worker: `pending`); the driver then
// waits for it and records `deadCountAfterReplay` and `deadIdsAfterReplay`.
import { createInterface } from "node:readline";

const [puppeteerUrl, executablePath, json] = process.argv.slice(2);
const { url, token, screenshot } = JSON.parse(json);
const { default: puppeteer } = await import(puppeteerUrl);
const origin = new URL(url).origin;
const wsOrigin = origin.replace(/^http/, "ws");
const answers = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function ask(need) {
  process.stdout.write(JSON.stringify({ need }) + "\n");
  const { value, done } = await answers.next();
  if (done) throw new Error(`The test closed stdin before answering "${need}"`);
  return JSON.parse(value);
}

const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  // Containers run as root, where Chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-proxy-server"],
});
const result = {};
const errors = [];
const requests = [];
const sockets = [];
let page;
try {
  page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 800 });
  page.setDefaultTimeout(15_000);
  page.on("pageerror", (error) => errors.push({ kind: "pageerror", text: error.message }));
  page.on("console", (message) => {
    if (message.type() === "error") {
      errors.push({ kind: "console", text: message.text(), url: message.location()?.url ?? "" });
    }
  });
  page.on("request", (request) => requests.push(request.url()));
  const cdp = await page.createCDPSession();
  await cdp.send("Network.enable");
  cdp.on("Network.webSocketCreated", ({ url }) => sockets.push(url));

  const text = (selector) => page.$eval(selector, (node) => node.textContent.trim());
  const visible = (selector) => page.waitForSelector(selector, { visible: true });
  const tailNames = () =>
    page.$$eval("[data-testid=tail-list] [data-event-name]", (items) => items.map((item) => item.dataset.eventName));
  const waitTailOpen = () =>
    page.waitForFunction(() => document.querySelector("[data-testid=tail-status]")?.dataset.state === "open");
  // Waits until every `{ path: { metric: value } }` cell of the metrics table shows the integer.
  const waitMetrics = (expect) =>
    page.waitForFunction(
      (expect) =>
        Object.entries(expect).every(([path, metrics]) =>
          Object.entries(metrics).every(([metric, value]) =>
            document.querySelector(`tr[data-backend="${path}"] [data-metric=${metric}]`)?.textContent === String(value)
          )
        ),
      { polling: 100 },
      expect,
    );
  const deadIds = (branch) => page.$$eval(`${branch} li[data-id]`, (items) => items.map((item) => item.dataset.id));
  const tableOf = () =>
    page.$$eval("[data-testid=metrics-table] tr[data-backend]", (rows) =>
      Object.fromEntries(rows.map((row) => [
        row.dataset.backend,
        Object.fromEntries([...row.querySelectorAll("[data-metric]")].map((cell) => [
          cell.dataset.metric,
          cell.textContent,
        ])),
      ])));

  // 1. Sign in with a wrong token, then the right one.
  await page.goto(`${url}/console`, { waitUntil: "load" });
  await visible("[data-testid=token-input]");
  await page.type("[data-testid=token-input]", "not-the-token");
  await page.click("[data-testid=token-submit]");
  await visible("[data-testid=auth-error]");
  result.authError = await text("[data-testid=auth-error]");
  result.consoleHiddenWhileSignedOut = await page.$eval("#console", (node) => node.hidden);
  await page.$eval("[data-testid=token-input]", (input) => (input.value = ""));
  await page.type("[data-testid=token-input]", token);
  await page.click("[data-testid=token-submit]");
  await page.waitForSelector('[data-testid=metrics-table] tr[data-backend="root"]');
  result.authErrorHiddenAfterSignIn = await page.$eval("[data-testid=auth-error]", (node) => node.hidden);
  result.storage = await page.evaluate(() => ({
    session: Object.keys(sessionStorage).map((key) => [key, sessionStorage.getItem(key)]),
    local: localStorage.length,
  }));
  result.pageUrl = page.url();

  // 2. Events, unfiltered: the counts, and every one of them in the tail.
  await waitTailOpen();
  const first = await ask("first");
  await waitMetrics(first.expect);
  await page.waitForFunction(
    (n) => document.querySelectorAll("[data-testid=tail-list] [data-event-name]").length === n,
    {},
    first.posted.length,
  );
  result.unfilteredTail = await tailNames();
  result.firstTable = await tableOf();

  // 3. A filter, applied by the collector on Enter: only matching names, newest first.
  await page.type("[data-testid=tail-filter]", first.filter);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => !document.querySelector("[data-testid=tail-list] [data-event-name]"));
  await waitTailOpen();
  const second = await ask("second");
  await waitMetrics(second.expect);
  await page.waitForFunction(
    (n) => document.querySelectorAll("[data-testid=tail-list] [data-event-name]").length >= n,
    {},
    second.matching.length,
  );
  await new Promise((resolve) => setTimeout(resolve, 300)); // anything unexpected would arrive by now
  result.filteredTail = await tailNames();
  await page.click("[data-testid=tail-list] [data-event-name] button");
  result.detail = await text("[data-testid=tail-detail]");
  result.firstItemText = await text("[data-testid=tail-list] [data-event-name]");

  // 4. Dead letters of the failing branch, then a replay of them.
  const branch = `[data-testid=dead-letters] [data-branch="${second.failingBranch}"]`;
  await page.waitForFunction(
    (selector, n) => document.querySelector(`${selector} [data-count]`)?.textContent === String(n),
    {},
    branch,
    second.total,
  );
  result.deadCount = Number(await text(`${branch} [data-count]`));
  result.deadNewest = await page.$$eval(`${branch} li`, (items) => items.map((item) => item.textContent));
  result.deadIds = await deadIds(branch);
  result.deadBranches = await page.$$eval(
    "[data-testid=dead-letters] [data-branch]",
    (nodes) => nodes.map((node) => [node.dataset.branch, node.querySelector("[data-count]").textContent]),
  );
  await page.click(`${branch} button`);
  await page.waitForFunction(
    (selector) => /^Replayed \d+:/.test(document.querySelector(`${selector} [data-replay-report]`)?.textContent ?? ""),
    {},
    branch,
  );
  result.replayReport = await text(`${branch} [data-replay-report]`);
  if (second.afterReplay !== undefined) {
    // Queued, not delivered yet: the page shows the letters again once they have failed again.
    await page.waitForFunction(
      (selector, n) => document.querySelector(`${selector} [data-count]`)?.textContent === String(n),
      { timeout: 30_000 },
      branch,
      second.afterReplay,
    );
    result.deadCountAfterReplay = Number(await text(`${branch} [data-count]`));
    result.deadIdsAfterReplay = await deadIds(branch);
  }

  // 5. Pause: events keep arriving but are held; resume shows them.
  await page.click("[data-testid=tail-pause]");
  const third = await ask("third");
  await waitMetrics(third.expect);
  await page.waitForFunction(() =>
    /paused: 1 new event/.test(document.querySelector("[data-testid=tail-status]").textContent)
  );
  result.pausedTail = await tailNames();
  result.pausedStatus = await text("[data-testid=tail-status]");
  await page.click("[data-testid=tail-pause]");
  result.resumedTail = await tailNames();

  // 6. The throughput chart: a line per branch that delivered, a legend entry per branch.
  await page.waitForFunction(() =>
    [...document.querySelectorAll("[data-testid=throughput-chart] svg polyline")]
      .some((line) => line.getAttribute("points").trim().split(/\s+/).length >= 2)
  );
  result.chart = await page.$eval("[data-testid=throughput-chart]", (chart) => ({
    lines: [...chart.querySelectorAll("polyline")].map((line) => line.dataset.branch),
    labels: [...chart.querySelectorAll("text")].map((label) => label.textContent),
    legend: [...document.querySelectorAll("#legend li")].map((item) => item.textContent),
  }));
  result.finalTable = await tableOf();

  // 7. The screenshot: the item's JSON shown, the pointer out of the way.
  await page.click("[data-testid=tail-list] [data-event-name] button");
  await page.mouse.move(0, 0);
  await page.screenshot({ path: screenshot, fullPage: true });

  // 8. A filter the collector refuses: the reason shown by the filter (the browser logs the refusals itself).
  result.errorsBeforeInvalidFilter = errors.length;
  await page.$eval("[data-testid=tail-filter]", (input) => (input.value = ""));
  await page.type("[data-testid=tail-filter]", "edx.(course");
  await page.keyboard.press("Enter");
  // The tail gives up on the filter (state "error"); the reason, if the collector gave it, is by the filter.
  await page.waitForFunction(() => document.querySelector("[data-testid=tail-status]").dataset.state === "error");
  result.invalidFilterError = await page.$eval(
    "[data-testid=tail-error]",
    (node) => node.hidden ? "" : node.textContent.trim(),
  );
  result.invalidFilterState = await page.$eval("[data-testid=tail-status]", (node) => node.dataset.state);
  result.invalidFilterStatus = await text("[data-testid=tail-status]");

  // 9. Sign out: the token leaves sessionStorage and the sign-in form is back.
  await page.click("[data-testid=sign-out]");
  await visible("[data-testid=token-input]");
  result.afterSignOut = await page.evaluate(() => sessionStorage.length);
  result.userAgent = await browser.version();
} catch (error) {
  result.error = error.stack ?? String(error);
  // What the page showed when it failed, beside the screenshot it would have taken.
  await page?.screenshot({ path: screenshot.replace(/\.png$/, "-failed.png"), fullPage: true }).catch(() => {});
} finally {
  Object.assign(result, { errors, requests, sockets, origin, wsOrigin });
  await browser.close();
}
process.stdout.write(JSON.stringify({ result }) + "\n");
process.exit(0);
