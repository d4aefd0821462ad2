// Opens an MFE page in headless Chromium with puppeteer-core, with the LMS's
// cookies set for the LMS host, and prints one JSON line: the page's results,
// its errors and every request to the LMS's /event (method, status, headers).
// Run by test/runtime/lms_event_browser_test.ts under Node.js:
//   node _lms_mfe_driver.mjs <puppeteer-core entry URL> <chromium path> <JSON {pageUrl, lmsUrl, cookies}>
const [puppeteerUrl, executablePath, json] = process.argv.slice(2);
const { pageUrl, lmsUrl, cookies } = JSON.parse(json);
const { default: puppeteer } = await import(puppeteerUrl);

const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  // Containers run as root, where Chromium's sandbox cannot start; *.localhost → loopback.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-proxy-server",
    "--host-resolver-rules=MAP *.localhost 127.0.0.1",
  ],
});
try {
  const page = await browser.newPage();
  const errors = [];
  const requests = [];
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("requestfinished", (request) => {
    const response = request.response();
    if (!request.url().startsWith(`${lmsUrl}/event`)) return;
    requests.push({
      method: request.method(),
      url: request.url(),
      status: response?.status(),
      headers: request.headers(),
      responseHeaders: response?.headers(),
      postData: request.postData(),
    });
  });
  page.on("requestfailed", (request) => {
    if (request.url().startsWith(`${lmsUrl}/event`)) {
      requests.push({ method: request.method(), url: request.url(), failed: request.failure()?.errorText });
    }
  });
  await page.setCookie(...cookies.map((cookie) => ({ url: lmsUrl, path: "/", ...cookie })));
  await page.goto(pageUrl, { waitUntil: "load" });
  await page.waitForFunction(() => globalThis.results !== undefined, { timeout: 15_000 });
  const results = await page.evaluate(() => globalThis.results);
  // The beacon: wait until its request has finished.
  const until = Date.now() + 5_000;
  while (
    Date.now() < until && !requests.some((r) =>
      r.url.startsWith(`${lmsUrl}/event`) &&
      r.headers?.["content-type"]?.startsWith("application/x-www-form-urlencoded") && !r.headers?.["x-csrftoken"] &&
      r.method === "POST" && /edx\.beacon/.test(r.postData ?? "")
    )
  ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const documentCookie = await page.evaluate(() => document.cookie);
  const userAgent = await page.evaluate(() => navigator.userAgent);
  console.log(JSON.stringify({ userAgent, errors, results, requests, documentCookie }));
} finally {
  await browser.close();
}
