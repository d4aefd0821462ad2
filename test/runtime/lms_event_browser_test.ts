/**
 * End to end: headless Chromium runs an Open edX MFE page (origin
 * `http://apps.lms.localhost:<port>`) that sends tracking-log events to the
 * collector serving the LMS's `/event` on `http://lms.localhost:<port>`,
 * cross-origin with credentials: the `csrftoken` and `edx-jwt-cookie-*`
 * cookies set for the LMS host, CORS (the MFE origin listed), `X-CSRFToken`,
 * `USE-JWT-COOKIE` and a form-urlencoded `event_type` / `event` / `page` body,
 * as `@edx/frontend-platform`'s `sendTrackingLogEvent` sends them. The page
 * reproduces the client's request with `fetch` (see _lms_mfe_page.html).
 *
 * @module
 */

import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import type { InMemoryBackend, RoutingBackend } from "../../mod.ts";
import { maskCsrfSecret } from "../../src/http/mod.ts";
import { startCollector } from "../../src/deno/serve.ts";
import { RecordingLogger } from "../_helpers.ts";
import { browserSkip, chromium, devPuppeteer } from "./_chromium.ts";

const HERE = new URL("./", import.meta.url);
const skip = browserSkip(import.meta.url, "the MFE → LMS /event browser test");

const COURSE = "course-v1:edX+DemoX+Demo_Course";
const SECRET = "abcdefghijklmnopqrstuvwxyzABCDEF"; // the csrftoken cookie's secret

interface DriverOutput {
  userAgent: string;
  errors: string[];
  documentCookie: string;
  results: {
    error?: string;
    tracked: { status: number; body: string };
    noCsrf: { status: number; body: string };
    pageClose: { status: number; body: string };
    beaconQueued: boolean;
  };
  requests: {
    method: string;
    url: string;
    status?: number;
    failed?: string;
    headers?: Record<string, string>;
    responseHeaders?: Record<string, string>;
    postData?: string;
  }[];
}

Deno.test({
  name: "an MFE page in headless Chromium sends tracking events to the LMS /event cross-origin with JWT cookies, CSRF",
  ignore: skip !== undefined,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" }] });
  const jwt = await new SignJWT({ preferred_username: "alice", user_id: 42, email: "alice@example.com" })
    .setProtectedHeader({ alg: "RS256", kid: "k1" }).setExpirationTime("10m")
    .setIssuer("http://lms.localhost/oauth2").setAudience("lms-key").sign(privateKey);
  const [header, payload, signature] = jwt.split(".");

  // The MFE origin: serves the page (any path, so the URL can be a course's).
  const html = await Deno.readTextFile(new URL("_lms_mfe_page.html", HERE));
  const mfe = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) =>
      new URL(request.url).pathname === "/favicon.ico"
        ? new Response(null, { status: 204 })
        : new Response(html, { headers: { "content-type": "text/html; charset=utf-8" } }),
  );
  // A subdomain of the LMS host, as in deployments (apps.lms.example.com): same-site, cross-origin.
  const mfeOrigin = `http://apps.lms.localhost:${mfe.addr.port}`;

  const dataDir = await Deno.makeTempDir({ prefix: "event-tracking-lms-browser-" });
  const collector = await startCollector({
    port: 0,
    hostname: "127.0.0.1",
    token: "t",
    dataDir,
    writeAheadLog: false,
    logger: new RecordingLogger(),
    config: {
      backends: {
        tracking_logs: {
          ENGINE: "eventtracking.backends.routing.RoutingBackend",
          OPTIONS: { backends: { memory: { ENGINE: "memory" } } },
        },
      },
    },
    lmsEvents: {
      jwks,
      issuer: "http://lms.localhost/oauth2",
      audience: "lms-key",
      corsOrigins: [mfeOrigin],
    },
  });
  const lmsUrl = `http://lms.localhost:${new URL(collector.url).port}`;
  const sink = (collector.tracker.getBackend("tracking_logs") as RoutingBackend).backends.get(
    "memory",
  ) as InMemoryBackend;
  try {
    const csrfHeader = maskCsrfSecret(SECRET); // as /csrf/api/v1/token hands out: a masked token
    const pageUrl = `${mfeOrigin}/learning/courses/${COURSE}/home?` +
      new URLSearchParams({ lms: lmsUrl, csrf: csrfHeader });
    // The cookies as the LMS sets them on http: host-only for lms.localhost, SameSite=Lax (the MFE is same-site).
    const cross = { sameSite: "Lax" };
    const cookies = [
      { name: "csrftoken", value: SECRET, ...cross },
      { name: "edx-jwt-cookie-header-payload", value: `${header}.${payload}`, ...cross },
      { name: "edx-jwt-cookie-signature", value: signature, httpOnly: true, ...cross },
    ];
    const run = new Deno.Command("node", {
      args: [
        new URL("_lms_mfe_driver.mjs", HERE).pathname,
        devPuppeteer.href,
        chromium!,
        JSON.stringify({ pageUrl, lmsUrl, cookies }),
      ],
      stdout: "piped",
      stderr: "piped",
      env: { HOME: dataDir, NO_PROXY: "*" },
      signal: AbortSignal.timeout(25_000),
    });
    const out = await run.output();
    const text = new TextDecoder();
    assert.equal(out.code, 0, `the driver failed:\n${text.decode(out.stdout)}\n${text.decode(out.stderr)}`);
    const result: DriverOutput = JSON.parse(text.decode(out.stdout).trim().split("\n").at(-1)!);
    console.log(`ran in ${result.userAgent}`);
    if (Deno.env.get("DEBUG_LMS_BROWSER")) console.log(JSON.stringify(result, null, 1), JSON.stringify(sink.events));
    assert.equal(result.results.error, undefined);

    // The credentialed cross-origin POST: its preflight passed (else fetch rejects), then 200 success.
    assert.deepEqual(result.results.tracked, { status: 200, body: "success" });
    const post = result.requests.find((r) => r.method === "POST" && r.headers?.["x-csrftoken"] === csrfHeader)!;
    assert.ok(post, JSON.stringify(result.requests));
    assert.equal(post.headers!["use-jwt-cookie"], "true");
    assert.match(
      post.headers!["cookie"] ?? "",
      /csrftoken=.*edx-jwt-cookie-header-payload=.*edx-jwt-cookie-signature=/,
    );
    const preflight = result.requests.find((r) => r.method === "OPTIONS");
    assert.equal(preflight?.status, 204);
    assert.equal(preflight?.responseHeaders?.["access-control-allow-origin"], mfeOrigin);
    // The only console errors are the two expected 403s.
    assert.deepEqual(result.errors.filter((e) => !/status of 403/.test(e)), []);
    assert.equal(post.headers!["origin"], mfeOrigin);
    assert.equal(post.responseHeaders!["access-control-allow-origin"], mfeOrigin);
    assert.equal(post.responseHeaders!["access-control-allow-credentials"], "true");

    // Without X-CSRFToken: 403, from fetch and from a beacon (which cannot set headers).
    assert.equal(result.results.noCsrf.status, 403);
    assert.equal(result.results.beaconQueued, true);
    const beacon = result.requests.find((r) => r.method === "POST" && /edx\.beacon/.test(r.postData ?? ""));
    assert.equal(beacon?.status, 403, JSON.stringify(result.requests));
    // The legacy page_close GET: no CSRF check.
    assert.deepEqual(result.results.pageClose, { status: 200, body: "success" });

    const names = sink.events.map((event) => event.name);
    assert.deepEqual(names, ["edx.ui.lms.sequence.next_selected", "page_close"]);
    const [tracked, close] = sink.events;
    const page = `${mfeOrigin}/learning/courses/${COURSE}/home?${new URL(pageUrl).search.slice(1)}`;
    assert.deepEqual(tracked.data, {
      current_tab: 1,
      tab_count: 3,
      target_tab: 2,
      widget_placement: "top",
      nested: { block_id: "b1" },
    });
    assert.equal(tracked.context.event_source, "browser");
    assert.equal(tracked.context.username, "alice");
    assert.equal(tracked.context.user_id, 42);
    assert.equal(tracked.context.course_id, COURSE);
    assert.equal(tracked.context.org_id, "edX");
    assert.equal(tracked.context.page, page);
    assert.equal(tracked.context.path, "/event");
    assert.equal(tracked.context.host, new URL(lmsUrl).host);
    assert.equal(tracked.context.ip, "127.0.0.1");
    assert.match(String(tracked.context.agent), /Chrome/);
    assert.equal(close.context.username, "alice");
    assert.equal(close.context.course_id, COURSE);
    assert.ok(!JSON.stringify(sink.events).includes("edx.forged"));
  } finally {
    await collector.shutdown();
    await mfe.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});
