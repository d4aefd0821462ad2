import assert from "node:assert/strict";
import {
  createTracker,
  ImproperlyConfigured,
  InMemoryBackend,
  isLegacyEvent,
  LEGACY_DATA_KEYS,
  LegacyFieldMappingProcessor,
  PrefixedEventProcessor,
  pythonIsoformat,
  restoreEvent,
  type RoutingBackend,
  Tracker,
  type TrackingEvent,
} from "../../mod.ts";
import { RecordingLogger } from "../_helpers.ts";

const ID = "018f3406-9e00-7123-8456-789abcdef012";

function event(context: Record<string, unknown>, data: unknown = {}, name = "edx.test.event"): TrackingEvent {
  return restoreEvent({ id: ID, name, timestamp: "2024-05-01T12:00:00.123Z", context, data });
}

const legacy = new LegacyFieldMappingProcessor();
const prefixed = new PrefixedEventProcessor();

function shim(e: TrackingEvent): TrackingEvent {
  return legacy.process(e) ?? e;
}

function both(e: TrackingEvent): TrackingEvent {
  const shimmed = shim(e);
  return prefixed.process(shimmed) ?? shimmed;
}

function record(e: TrackingEvent): Record<string, unknown> {
  return e.data as Record<string, unknown>;
}

Deno.test("shim: the request fields move from the context to the top level, client_id goes, in the reference's order", () => {
  const out = shim(event({
    user_id: 7,
    username: "ada",
    session: "s1",
    ip: "203.0.113.7",
    agent: "UA",
    host: "lms.test",
    referer: "https://lms.test/x",
    accept_language: "fr",
    client_id: "GA1.2",
    path: "/event",
    course_id: "course-v1:a+b+c",
  }, { x: 1 }));
  assert.deepEqual(out.context, { user_id: 7, path: "/event", course_id: "course-v1:a+b+c" });
  assert.deepEqual(record(out), {
    username: "ada",
    session: "s1",
    ip: "203.0.113.7",
    agent: "UA",
    host: "lms.test",
    referer: "https://lms.test/x",
    accept_language: "fr",
    event: { x: 1 },
    time: "2024-05-01T12:00:00.123000+00:00",
    event_type: "edx.test.event",
    event_source: "server",
    page: null,
  });
  assert.deepEqual(Object.keys(record(out)), LEGACY_DATA_KEYS);
  assert.equal(out.id, ID, "the id is kept");
  assert.equal(out.timestamp, "2024-05-01T12:00:00.123Z", "the emit time is kept");
});

Deno.test("shim: absent request fields default to empty strings; a null one moves as null", () => {
  const out = shim(event({ ip: null }));
  assert.deepEqual(
    LEGACY_DATA_KEYS.slice(0, 7).map((k) => record(out)[k]),
    ["", "", null, "", "", "", ""],
  );
  assert.deepEqual(out.context, {});
});

Deno.test("shim: a browser event's object data becomes Python's JSON text; other data stays as it is", () => {
  const browser = shim(event({ event_source: "browser", page: "https://lms.test/p" }, { a: "é", b: [1, 2.5] }));
  assert.equal(record(browser).event, '{"a": "\\u00e9", "b": [1, 2.5]}');
  assert.equal(record(browser).event_source, "browser");
  assert.equal(record(browser).page, "https://lms.test/p");
  assert.deepEqual(browser.context, {});
  // A list or a string is not a dict: kept as it is, even for a browser event.
  assert.deepEqual(record(shim(event({ event_source: "browser" }, [1, 2]))).event, [1, 2]);
  assert.equal(record(shim(event({ event_source: "browser" }, "raw text"))).event, "raw text");
  assert.deepEqual(record(shim(event({ event_source: "mobile" }, { a: 1 }))).event, { a: 1 });
  assert.deepEqual(record(shim(event({}, { a: 1 }))).event, { a: 1 });
});

Deno.test("shim: data missing becomes {}", () => {
  const e = { id: ID, name: "n", timestamp: "2024-05-01T12:00:00.000Z", context: {}, data: undefined };
  assert.deepEqual(record(shim(e)).event, {});
});

Deno.test("shim: time is context.timestamp (removed) in Python's UTC isoformat, else the emit time", () => {
  const fromContext = shim(event({ timestamp: "2024-05-01T14:00:00.5+02:00", user_id: 1 }));
  assert.equal(record(fromContext).time, "2024-05-01T12:00:00.500000+00:00");
  assert.deepEqual(fromContext.context, { user_id: 1 });
  assert.equal(
    record(shim(event({ timestamp: "2024-05-01T12:00:00.123456+00:00" }))).time,
    "2024-05-01T12:00:00.123456+00:00",
  );
  assert.equal(record(shim(event({ timestamp: "not a time" }))).time, "not a time", "kept when not a time");
  assert.equal(record(shim(event({ timestamp: 17 }))).time, 17);
  const zero = restoreEvent({ id: ID, name: "n", timestamp: "2024-05-01T12:00:00.000Z", context: {}, data: {} });
  assert.equal(record(shim(zero)).time, "2024-05-01T12:00:00+00:00", "a zero fraction is omitted, as Python does");
  assert.equal(pythonIsoformat("2024-05-01T12:00:00"), "2024-05-01T12:00:00+00:00", "no offset: UTC");
  assert.equal(pythonIsoformat("2024-02-30T12:00:00Z"), undefined);
});

Deno.test("shim: event_type, event_source and page move from the context, with their defaults", () => {
  const out = shim(event({ event_type: "legacy_name", event_source: "mobile", page: "p", x: 1 }));
  assert.equal(record(out).event_type, "legacy_name");
  assert.equal(record(out).event_source, "mobile");
  assert.equal(record(out).page, "p");
  assert.deepEqual(out.context, { x: 1 });
});

Deno.test("shim: returns a new frozen event, changes nothing, and passes an already shimmed event", () => {
  const original = event({ username: "ada", client_id: "c" }, { deep: { x: 1 } });
  const before = JSON.stringify(original);
  const out = shim(original);
  assert.notEqual(out, original);
  assert.equal(JSON.stringify(original), before);
  assert.ok(Object.isFrozen(out) && Object.isFrozen(out.data) && Object.isFrozen(out.context));
  assert.ok(isLegacyEvent(out) && !isLegacyEvent(original));
  assert.equal(legacy.process(out), undefined, "idempotent: a shimmed event is kept");
  // Through a JSON round trip (a queue, a dead letter), it is still recognised.
  assert.equal(legacy.process(restoreEvent(JSON.parse(JSON.stringify(out)))), undefined);
});

Deno.test("PrefixedEventProcessor: tab_selected is seq_goto with old and new", () => {
  const out = both(event({}, { current_tab: 2, target_tab: 5, id: "b" }, "edx.ui.lms.sequence.tab_selected"));
  assert.equal(record(out).event_type, "seq_goto");
  assert.deepEqual(record(out).event, { current_tab: 2, target_tab: 5, id: "b", old: 2, new: 5 });
  assert.equal(out.name, "edx.ui.lms.sequence.tab_selected");
});

Deno.test("PrefixedEventProcessor: next/previous within a sequence are seq_next/seq_prev; across its edge they keep their name", () => {
  const next = both(event({}, { current_tab: 2, tab_count: 3 }, "edx.ui.lms.sequence.next_selected"));
  assert.equal(record(next).event_type, "seq_next");
  assert.deepEqual(record(next).event, { current_tab: 2, tab_count: 3, old: 2, new: 3 });
  const last = both(event({}, { current_tab: 3, tab_count: 3 }, "edx.ui.lms.sequence.next_selected"));
  assert.equal(record(last).event_type, "edx.ui.lms.sequence.next_selected");
  assert.deepEqual(record(last).event, { current_tab: 3, tab_count: 3 });
  const prev = both(event({}, { current_tab: 2, tab_count: 3 }, "edx.ui.lms.sequence.previous_selected"));
  assert.equal(record(prev).event_type, "seq_prev");
  assert.deepEqual(record(prev).event, { current_tab: 2, tab_count: 3, old: 2, new: 1 });
  const first = both(event({}, { current_tab: 1, tab_count: 3 }, "edx.ui.lms.sequence.previous_selected"));
  assert.equal(record(first).event_type, "edx.ui.lms.sequence.previous_selected");
});

Deno.test("PrefixedEventProcessor: a browser event's JSON-text payload stays Python JSON text", () => {
  const out = both(
    event({ event_source: "browser" }, { current_tab: 1, target_tab: 2 }, "edx.ui.lms.sequence.tab_selected"),
  );
  assert.equal(record(out).event, '{"current_tab": 1, "target_tab": 2, "old": 1, "new": 2}');
});

Deno.test("PrefixedEventProcessor: mobile video events get their legacy event_type and payload", () => {
  const played = both(event({}, {
    module_id: "block-v1:edX+DemoX+Demo+type@video+block@0b9e39477cf34507a7a48f74be381fdd",
    current_time: 12.5,
    code: "mobile",
  }, "edx.video.played"));
  assert.equal(record(played).event_type, "play_video");
  assert.deepEqual(record(played).event, { code: "mobile", id: "0b9e39477cf34507a7a48f74be381fdd", currentTime: 12.5 });
  assert.deepEqual(Object.keys(record(played).event as object), ["code", "id", "currentTime"], "Python's dict order");

  const seeked = both(event(
    {
      open_in_browser_url: "https://lms.test/courses/c/jump_to/v",
      application: { name: "edx.mobileapp.iOS", version: "1.0.02" },
    },
    { seek_type: "skip", requested_skip_interval: 30, module_id: "not a key" },
    "edx.video.seeked",
  ));
  assert.equal(seeked.name, "edx.video.position.changed");
  assert.equal(record(seeked).event_type, "seek_video");
  assert.equal(record(seeked).page, "https://lms.test/courses/c/jump_to");
  assert.deepEqual(record(seeked).event, { requested_skip_interval: -30, type: "onSkipSeek" });
  assert.deepEqual(seeked.context, { application: { name: "edx.mobileapp.iOS", version: "1.0.02" } });

  const slide = both(event({}, { seek_type: "skip", requested_skip_interval: 12 }, "edx.video.position.changed"));
  assert.deepEqual(record(slide).event, { requested_skip_interval: 12, type: "onSlideSeek" });
  const old = both(event({}, { module_id: "i4x://edX/DemoX/video/abc.def" }, "edx.video.loaded"));
  assert.deepEqual(record(old).event, { id: "i4x-edX-DemoX-video-abc_def" });
  const empty = both(event({}, {}, "edx.video.paused"));
  assert.equal(record(empty).event_type, "pause_video");
  assert.deepEqual(record(empty).event, {});
});

Deno.test("PrefixedEventProcessor: other events pass unchanged, and an unshimmed or incomplete event is an error counted by the router", () => {
  const shimmed = shim(event({}, { a: 1 }, "edx.video.bumper.shown")); // a video name without a legacy type
  assert.equal(prefixed.process(shimmed), undefined);
  assert.equal(prefixed.process(shim(event({}, {}, "problem_check"))), undefined);

  const logger = new RecordingLogger();
  const sink = new InMemoryBackend();
  const tracker = new Tracker({ backends: { sink }, processors: [prefixed], logger });
  tracker.emit("edx.video.played", { current_time: 1 }); // not shimmed first
  assert.equal(sink.events.length, 1, "the event goes on unchanged");
  assert.deepEqual(sink.events[0].data, { current_time: 1 });
  assert.match(String((logger.errors[0].detail as Error).message), /run LegacyFieldMappingProcessor before it/);

  const tracker2 = new Tracker({ backends: { sink }, processors: [legacy, prefixed], logger });
  tracker2.emit("edx.ui.lms.sequence.next_selected", { tab_count: 3 }); // no current_tab
  assert.equal(record(sink.events[1]).event_type, "edx.ui.lms.sequence.next_selected", "shimmed, not transformed");
  assert.equal(logger.errors.length, 2);
});

Deno.test("edx-platform's tracking_logs branch loads as JSON with the reference's ENGINE names and short names", () => {
  for (
    const [first, second] of [
      ["track.shim.LegacyFieldMappingProcessor", "track.shim.PrefixedEventProcessor"],
      ["legacy_field_mapping", "prefixed_event"],
    ]
  ) {
    const tracker = createTracker({
      backends: {
        tracking_logs: {
          ENGINE: "eventtracking.backends.routing.RoutingBackend",
          OPTIONS: {
            backends: { memory: { ENGINE: "memory" } },
            processors: [{ ENGINE: first }, { ENGINE: second, OPTIONS: {} }],
          },
        },
      },
    });
    tracker.emit("edx.video.played", { current_time: 3 });
    const memory = (tracker.getBackend("tracking_logs") as RoutingBackend).backends.get("memory") as InMemoryBackend;
    assert.equal(record(memory.events[0]).event_type, "play_video");
    assert.deepEqual(record(memory.events[0]).event, { currentTime: 3 });
  }
  assert.throws(
    () =>
      createTracker({
        backends: {
          logs: {
            ENGINE: "routing",
            OPTIONS: { processors: [{ ENGINE: "track.shim.PrefixedEventProcessor", OPTIONS: { x: 1 } }] },
          },
        },
      }),
    (error: unknown) =>
      error instanceof ImproperlyConfigured &&
      error.message === "backends.logs.OPTIONS.processors[0].OPTIONS.x: unknown option (expected: none)",
  );
});

Deno.test("shim: the shimmed event is immutable to the leaves, whether the tracker made the event or not", () => {
  const tracker = new Tracker();
  const emitted = tracker.withContext("r", { username: "ada", nested: { a: [1] } }).createEvent("e", { x: { y: 1 } });
  const handMade = {
    id: "1",
    name: "e",
    timestamp: emitted.timestamp,
    context: { nested: { a: [1] } },
    data: { x: { y: 1 } },
  };
  for (const event of [emitted, handMade]) {
    const shimmed = new LegacyFieldMappingProcessor().process(event) as TrackingEvent;
    const data = shimmed.data as { event: { x: { y: number } } };
    const nested = shimmed.context.nested as { a: number[] };
    for (const part of [shimmed, shimmed.context, data, data.event, data.event.x, nested, nested.a]) {
      assert.ok(Object.isFrozen(part));
    }
  }
  // An event from elsewhere is copied: changing it later does not change what was shimmed.
  const shimmed = new LegacyFieldMappingProcessor().process(handMade) as TrackingEvent;
  handMade.data.x.y = 2;
  assert.equal((shimmed.data as { event: { x: { y: number } } }).event.x.y, 1);
});

Deno.test("pythonIsoformat answers the same for a repeated time as for a new one", () => {
  for (
    const time of ["2024-05-01T12:00:00.123Z", "2024-05-01T12:00:00.123Z", "nope", "nope", "2024-05-01T14:00:00+02:00"]
  ) {
    const expected = time === "nope"
      ? undefined
      : time.endsWith("Z")
      ? "2024-05-01T12:00:00.123000+00:00"
      : "2024-05-01T12:00:00+00:00";
    assert.equal(pythonIsoformat(time), expected, time);
  }
});
