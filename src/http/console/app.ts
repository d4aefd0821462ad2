/**
 * The operator console (`GET /console`): one page, its script and its styles,
 * served by the collector itself so that it works offline and asks no other
 * host for anything. The page holds no data: its script reads the
 * authenticated JSON API (`/v1/metrics.json`, `/v1/dead-letters`,
 * `/v1/bus/subscribe`), so these routes need no token.
 *
 * @module
 */

import { Hono, type MiddlewareHandler } from "hono";
import type { HonoApp } from "../_hono.ts";
import { etag } from "hono/etag";
import { secureHeaders } from "hono/secure-headers";
import { CONSOLE_HTML } from "./page.ts";
import { CONSOLE_SCRIPT } from "./script.ts";
import { CONSOLE_STYLE } from "./style.ts";

/** The console app: a Hono app (`Hono` of npm:hono) with no bindings or variables of its own. */
export type ConsoleApp = HonoApp<Record<never, never>>;

/**
 * Creates the console app: `GET /console` (and `/console/`) answers the page,
 * `GET /console/console.js` its script and `GET /console/console.css` its
 * styles. Every answer carries a strict Content-Security-Policy (same-origin
 * script, style and connections only; no inline script or style; no framing),
 * a strong ETag and `Cache-Control: no-cache`, so a browser revalidates and
 * picks up a new version at once. Mount it on the collector app with
 * `app.route("/", createConsoleApp())`: its middleware applies to `/console`
 * paths only.
 *
 * @example Serve the page
 * ```ts
 * import { createConsoleApp } from "./app.ts";
 * import assert from "node:assert/strict";
 *
 * const app = createConsoleApp();
 * const page = await app.request("/console");
 * assert.equal(page.status, 200);
 * assert.match(page.headers.get("content-type")!, /^text\/html/);
 * assert.match(page.headers.get("content-security-policy")!, /script-src 'self'/);
 * assert.match(await page.text(), /data-testid="token-input"/);
 *
 * const script = await app.request("/console/console.js");
 * assert.equal(script.headers.get("content-type"), "text/javascript; charset=utf-8");
 * const again = await app.request("/console/console.js", {
 *   headers: { "if-none-match": script.headers.get("etag")! },
 * });
 * assert.equal(again.status, 304);
 * ```
 *
 * @returns A Hono app serving the console under `/console`.
 */
export function createConsoleApp(): ConsoleApp {
  const app = new Hono();
  const headers = secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'none'"],
      scriptSrc: ["'self'"],
      styleSrc: ["'self'"],
      connectSrc: ["'self'"],
      imgSrc: ["'self'", "data:"],
      frameAncestors: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
    },
    xFrameOptions: "DENY",
    // HSTS is the deployment's decision (its TLS proxy), not a page's: it would bind every subdomain to https.
    strictTransportSecurity: false,
  });
  const noCache: MiddlewareHandler = async function noCache(c, next) {
    await next();
    c.header("cache-control", "no-cache");
  };
  const serve = (body: string, type: string) => (c: { body: (data: string, init: ResponseInit) => Response }) =>
    c.body(body, { headers: { "content-type": type } });
  const page = serve(CONSOLE_HTML, "text/html; charset=utf-8");

  // Scoped to the console's paths ("/console/*" matches "/console" too): mounted at "/", a "*" middleware
  // would apply to the whole collector.
  app.use("/console/*", headers, noCache, etag());
  app.get("/console", page);
  app.get("/console/", page);
  app.get("/console/console.js", serve(CONSOLE_SCRIPT, "text/javascript; charset=utf-8"));
  app.get("/console/console.css", serve(CONSOLE_STYLE, "text/css; charset=utf-8"));
  return app;
}
