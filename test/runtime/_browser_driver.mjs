// Opens a page in headless Chromium with puppeteer-core and prints what it
// computed (`globalThis.results`) as one JSON line, with the page's errors.
// Run by test/runtime/browser_test.ts under Node.js:
//   node _browser_driver.mjs <puppeteer-core entry URL> <chromium path> <page URL>
const [puppeteerUrl, executablePath, pageUrl] = process.argv.slice(2);
const { default: puppeteer } = await import(puppeteerUrl);

const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  // Containers run as root, where Chromium's sandbox cannot start.
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`);
  });
  page.on("requestfailed", (request) => errors.push(`requestfailed: ${request.url()}`));
  await page.goto(pageUrl, { waitUntil: "load" });
  await page.waitForFunction(() => globalThis.results !== undefined, { timeout: 20_000 });
  const results = await page.evaluate(() => globalThis.results);
  const userAgent = await page.evaluate(() => navigator.userAgent);
  console.log(JSON.stringify({ userAgent, errors, results }));
} finally {
  await browser.close();
}
