import assert from "node:assert/strict";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { InMemoryBackend, Tracker } from "../../mod.ts";
import {
  createCollectorApp,
  csrfSecret,
  lmsEventsFromEnv,
  type LmsEventsOptions,
  maskCsrfSecret,
  sessionHash,
} from "../../src/http/mod.ts";
import { RecordingLogger } from "../_helpers.ts";

const { privateKey, publicKey } = await generateKeyPair("RS256");
const other = await generateKeyPair("RS256");
const jwk = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };
const JWKS = JSON.stringify({ keys: [jwk] });
const SECRET = "abcdefghijklmnopqrstuvwxyzABCDEF";

function setup(lms: LmsEventsOptions = {}) {
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ backends: { sink } });
  const app = createCollectorApp({ tracker, token: "t", lmsEvents: lms, logger: new RecordingLogger() });
  return { sink, app, tracker };
}

async function jwtCookies(claims: Record<string, unknown>, options: { key?: typeof privateKey; exp?: number } = {}) {
  const token = await new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "k1" })
    .setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 600).setIssuer("https://lms.test/oauth2")
    .setAudience("lms-key").sign(options.key ?? privateKey);
  const [header, payload, signature] = token.split(".");
  return `edx-jwt-cookie-header-payload=${header}.${payload}; edx-jwt-cookie-signature=${signature}`;
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const FORM = { "content-type": "application/x-www-form-urlencoded" };

Deno.test("POST /event emits the LMS view's event in the edx.course.browser context", async () => {
  const { sink, app } = setup();
  const response = await app.request("https://lms.test/event", {
    method: "POST",
    headers: {
      ...FORM,
      "user-agent": "UA",
      referer: "https://lms.test/x",
      "accept-language": "fr",
      "cf-connecting-ip": "203.0.113.9",
    },
    body: form({
      event_type: "edx.ui.lms.sequence.next_selected",
      event: '{"current_tab":1}',
      page: "https://lms.test/courses/course-v1:edX+DemoX+2024/courseware/a/",
    }),
  });
  assert.equal(response.status, 200);
  assert.equal(await response.text(), "success");
  const [event] = sink.events;
  assert.equal(event.name, "edx.ui.lms.sequence.next_selected");
  assert.deepEqual(event.data, { current_tab: 1 });
  const { request_id, ...context } = event.context;
  assert.equal(typeof request_id, "string");
  assert.deepEqual(context, {
    ip: "203.0.113.9",
    agent: "UA",
    host: "lms.test",
    path: "/event",
    referer: "https://lms.test/x",
    accept_language: "fr",
    user_id: null,
    session: "",
    course_id: "course-v1:edX+DemoX+2024",
    org_id: "edX",
    username: "anonymous",
    event_source: "browser",
    page: "https://lms.test/courses/course-v1:edX+DemoX+2024/courseware/a/",
  });
});

Deno.test("GET /event takes the fields from the query; defaults are {} and unknown", async () => {
  const { sink, app } = setup();
  assert.equal((await app.request("/event")).status, 200);
  assert.equal(sink.events[0].name, "unknown");
  assert.deepEqual(sink.events[0].data, {});
  assert.equal(sink.events[0].context.page, null);
  assert.equal(sink.events[0].context.course_id, "");
  await app.request("/event?event_type=page_close&event=not%20json&courserun_key=edX/Old/2013");
  assert.equal(sink.events[1].name, "page_close");
  assert.equal(sink.events[1].data, "not json");
  assert.equal(sink.events[1].context.course_id, "edX/Old/2013");
  assert.equal(sink.events[1].context.org_id, "edX");
});

Deno.test("courserun_key wins over the page URL; an invalid key falls back to the page", async () => {
  const { sink, app } = setup();
  const page = "https://lms.test/courses/course-v1:A+B+C/about";
  await app.request(`/event?${form({ page, courserun_key: "course-v1:X+Y+Z" })}`);
  await app.request(`/event?${form({ page, courserun_key: "garbage" })}`);
  assert.equal(sink.events[0].context.course_id, "course-v1:X+Y+Z");
  assert.equal(sink.events[0].context.org_id, "X");
  assert.equal(sink.events[1].context.course_id, "course-v1:A+B+C");
});

Deno.test("POST /event accepts multipart/form-data", async () => {
  const { sink, app } = setup();
  const body = new FormData();
  body.set("event_type", "play_video");
  body.set("event", '{"id":"v1"}');
  const response = await app.request("/event", { method: "POST", body });
  assert.equal(response.status, 200);
  assert.equal(sink.events[0].name, "play_video");
  assert.deepEqual(sink.events[0].data, { id: "v1" });
});

Deno.test("client_id comes from the _ga cookie or X-EDX-GA-CLIENT-ID", async () => {
  const { sink, app } = setup({ csrf: false });
  await app.request("/event", { headers: { cookie: "_ga=GA1.2.12345.67890" } });
  await app.request("/event", { headers: { "x-edx-ga-client-id": "abc.def" } });
  assert.equal(sink.events[0].context.client_id, "12345.67890");
  assert.equal(sink.events[1].context.client_id, "abc.def");
});

Deno.test("identity comes from verified JWT cookies only", async () => {
  const { sink, app } = setup({ jwks: JWKS, issuer: "https://lms.test/oauth2", audience: "lms-key" });
  const claims = { preferred_username: "alice", user_id: 42 };
  const cases: [string, string | undefined][] = [
    ["valid", await jwtCookies(claims)],
    ["expired", await jwtCookies(claims, { exp: Math.floor(Date.now() / 1000) - 3600 })],
    ["forged", await jwtCookies(claims, { key: other.privateKey })],
    ["none", undefined],
    ["missing", ""],
  ];
  const unsigned = btoa('{"alg":"none"}').replace(/=/g, "") + "." +
    btoa(JSON.stringify(claims)).replace(/=/g, "");
  cases[3][1] = `edx-jwt-cookie-header-payload=${unsigned}; edx-jwt-cookie-signature=x`;
  for (const [, cookie] of cases) {
    const response = await app.request("/event?event_type=x", { headers: cookie ? { cookie } : {} });
    assert.equal(response.status, 200);
  }
  assert.equal(sink.events[0].context.username, "alice");
  assert.equal(sink.events[0].context.user_id, 42);
  for (const event of sink.events.slice(1)) {
    assert.equal(event.context.username, "anonymous");
    assert.equal(event.context.user_id, null);
    assert.ok(!JSON.stringify(event).includes("alice"));
  }
  // Wrong audience.
  const strict = setup({ jwks: JWKS, audience: "other" });
  await strict.app.request("/event", { headers: { cookie: await jwtCookies(claims) } });
  assert.equal(strict.sink.events[0].context.username, "anonymous");
});

Deno.test("CSRF: cookie-carrying POSTs need a matching X-CSRFToken, masked or not", async () => {
  const { sink, app } = setup();
  const post = (headers: Record<string, string>) =>
    app.request("https://lms.test/event", { method: "POST", headers: { ...FORM, ...headers }, body: "event_type=a" });
  const cookie = `csrftoken=${SECRET}; sessionid=s`;
  assert.equal((await post({ cookie, "x-csrftoken": SECRET })).status, 200);
  assert.equal((await post({ cookie, "x-csrftoken": maskCsrfSecret(SECRET) })).status, 200);
  assert.equal((await post({ cookie: `csrftoken=${maskCsrfSecret(SECRET)}`, "x-csrftoken": SECRET })).status, 200);
  assert.equal((await post({ cookie })).status, 403);
  assert.equal((await post({ cookie, "x-csrftoken": "B".repeat(32) })).status, 403);
  assert.equal((await post({ cookie: "sessionid=s", "x-csrftoken": SECRET })).status, 403);
  assert.equal((await post({ cookie, "x-csrftoken": SECRET, origin: "https://evil.test" })).status, 403);
  assert.equal((await post({ cookie, "x-csrftoken": SECRET, origin: "https://lms.test" })).status, 200);
  assert.equal((await post({})).status, 200); // no cookies: nothing to forge
  assert.equal(sink.events.length, 5);
  const off = setup({ csrf: false });
  assert.equal(
    (await off.app.request("/event", { method: "POST", headers: { ...FORM, cookie }, body: "" })).status,
    200,
  );
});

Deno.test("csrfSecret unmasks Django's masked tokens", () => {
  const mask = "0123456789abcdefghijklmnopqrstuv";
  const token = maskCsrfSecret(SECRET, mask);
  assert.equal(token.slice(0, 32), mask);
  assert.equal(csrfSecret(token), SECRET);
  assert.equal(csrfSecret("x".repeat(40)), undefined);
  assert.equal(csrfSecret("!".repeat(32)), undefined);
});

Deno.test("CORS: listed origins get the exact origin, credentials and the clients' headers", async () => {
  const { app } = setup({ corsOrigins: ["https://apps.lms.test"] });
  const preflight = await app.request("https://lms.test/event", {
    method: "OPTIONS",
    headers: {
      origin: "https://apps.lms.test",
      "access-control-request-method": "POST",
      "access-control-request-headers": "x-csrftoken,use-jwt-cookie,content-type",
    },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get("access-control-allow-origin"), "https://apps.lms.test");
  assert.equal(preflight.headers.get("access-control-allow-credentials"), "true");
  const allowed = preflight.headers.get("access-control-allow-headers")!.toLowerCase();
  for (const header of ["x-csrftoken", "use-jwt-cookie", "content-type"]) assert.ok(allowed.includes(header));
  const other = await app.request("https://lms.test/event", {
    method: "OPTIONS",
    headers: { origin: "https://evil.test", "access-control-request-method": "POST" },
  });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  const post = await app.request("https://lms.test/event", {
    method: "POST",
    headers: {
      ...FORM,
      origin: "https://apps.lms.test",
      cookie: `csrftoken=${SECRET}`,
      "x-csrftoken": maskCsrfSecret(SECRET),
    },
    body: "event_type=a",
  });
  assert.equal(post.status, 200);
  assert.equal(post.headers.get("access-control-allow-origin"), "https://apps.lms.test");
});

Deno.test("session is shake_128(secret + sessionid) as 16 bytes of hex, else empty", async () => {
  // Values from Python: hashlib.shake_128((secret + key).encode()).hexdigest(16)
  assert.equal(sessionHash("secret", "abc"), "30dfd1de718e0498306ca198b49f5110");
  const { sink, app } = setup({ sessionSecret: "secret", csrf: false });
  await app.request("/event", { headers: { cookie: "sessionid=abc" } });
  await app.request("/event");
  assert.equal(sink.events[0].context.session, "30dfd1de718e0498306ca198b49f5110");
  assert.equal(sink.events[1].context.session, "");
});

Deno.test("POST /segmentio/event: key, methods, and the mobile event", async () => {
  const { sink, app } = setup({ segmentioSecret: "seg-key" });
  const segment = {
    type: "track",
    event: "edx.video.played",
    userId: 7,
    context: { app: { name: "edx.mobileapp.android" }, userAgent: "okhttp", ip: "198.51.100.1" },
    properties: { data: { id: "v" }, context: { course_id: "course-v1:edX+M+1" } },
    timestamp: "2024-05-01T12:00:00.000Z",
  };
  const post = (key: string) =>
    app.request(`/segmentio/event?key=${key}`, { method: "POST", body: JSON.stringify(segment) });
  assert.equal((await post("wrong")).status, 401);
  assert.equal((await app.request("/segmentio/event?key=seg-key")).status, 405);
  assert.equal((await post("seg-key")).status, 200);
  const response = await app.request("/segmentio/event?key=seg-key", { method: "POST", body: "{not json" });
  assert.equal(response.status, 200);
  assert.equal(sink.events.length, 1);
  const [event] = sink.events;
  assert.equal(event.name, "edx.video.played");
  assert.deepEqual(event.data, { id: "v" });
  assert.equal(event.context.event_source, "mobile");
  assert.deepEqual(event.context.client, segment.context);
  assert.equal(event.context.org_id, "edX");
  assert.equal(event.context.user_id, 7);
  assert.equal((await setup().app.request("/segmentio/event?key=", { method: "POST", body: "{}" })).status, 401);
});

Deno.test("limits: 413 for big bodies and fields, 415 for JSON, 405, 429 over the rate limit, never 5xx", async () => {
  const { app } = setup({ maxBodyBytes: 1024, rateLimit: { requests: 3 } });
  const post = (body: string, headers: Record<string, string> = FORM) =>
    app.request("/event", { method: "POST", headers, body });
  assert.equal((await post("event=" + "x".repeat(2000))).status, 413);
  assert.equal((await post('{"a":1}', { "content-type": "application/json" })).status, 415);
  assert.equal((await app.request("/event", { method: "PUT" })).status, 405);
  const limited = await app.request("/event");
  assert.equal(limited.status, 429);
  assert.ok(limited.headers.get("retry-after"));
  const fields = setup({ maxEventChars: 10 });
  assert.equal((await fields.app.request(`/event?event=${"x".repeat(20)}`)).status, 413);
  assert.equal((await fields.app.request(`/event?page=${"x".repeat(5000)}`)).status, 413);
  const bad = await fields.app.request("/event", {
    method: "POST",
    headers: { "content-type": "multipart/form-data; boundary=zz" },
    body: "garbage",
  });
  assert.equal(bad.status, 400);
});

Deno.test("the JSON API keeps its bearer token; without lmsEvents /event is a 404", async () => {
  const { app } = setup();
  assert.equal((await app.request("/v1/events", { method: "POST", body: '{"name":"a"}' })).status, 401);
  const plain = createCollectorApp({ tracker: new Tracker(), token: "t" });
  assert.equal((await plain.request("/event")).status, 404);
});

Deno.test("lmsEventsFromEnv reads the variables", () => {
  assert.equal(lmsEventsFromEnv({ EVENT_TRACKING_CSRF: "off", EVENT_TRACKING_LMS_EVENTS: "off" }), undefined);
  const options = lmsEventsFromEnv({
    EVENT_TRACKING_JWT_JWKS: JWKS,
    EVENT_TRACKING_CSRF: "off",
    EVENT_TRACKING_SESSION_SECRET: "s",
    TRACKING_SEGMENTIO_WEBHOOK_SECRET: "k",
  })!;
  assert.equal(options.csrf, false);
  assert.equal(options.jwks, JWKS);
  assert.equal(options.segmentioSecret, "k");
  assert.throws(() => lmsEventsFromEnv({ EVENT_TRACKING_CSRF: "maybe" }), RangeError);
  assert.deepEqual(lmsEventsFromEnv({ EVENT_TRACKING_LMS_EVENTS: "on" })?.corsOrigins, []);
});
