/**
 * Context-aware, semi-structured event tracking: the TypeScript successor of
 * Open edX's Python `event-tracking` library.
 *
 * Emit events with {@linkcode Tracker.emit}; named context scopes add their
 * keys to every event emitted inside them; a tree of routers, each with its
 * own processors, delivers events to backends.
 *
 * @example Track an event
 * ```ts
 * import { InMemoryBackend, Tracker } from "@edx/event-tracking";
 * import assert from "node:assert/strict";
 *
 * const sink = new InMemoryBackend();
 * const tracker = new Tracker({ backends: { sink } });
 * tracker.context("edx.request", { user_id: 10938 }, () => {
 *   tracker.emit("navigation.request", { url: "http://www.edx.org/some/path/1" });
 * });
 * assert.deepEqual(sink.events[0].context, { user_id: 10938 });
 * ```
 *
 * @module
 */

export { restoreEvent, serializeEvent, type TrackingEvent } from "./src/event.ts";
export type { Backend, CloseOptions } from "./src/backend.ts";
export type { BackoffOptions } from "./src/_backoff.ts";
export { DROP } from "./src/processor.ts";
export type { Processor, ProcessorFunction, ProcessorObject, ProcessorResult } from "./src/processor.ts";
export { EventEmissionExit, EventRejected, ImproperlyConfigured } from "./src/errors.ts";
export {
  EVENT_TYPE_ERRORS,
  EVENT_TYPE_VERSION,
  EventCatalog,
  type EventCatalogJSON,
  type EventCatalogOptions,
  type EventDefinition,
  type EventStats,
  type EventTypeInfo,
  type JsonSchema,
  type Observation,
  type ValidationIssue,
} from "./src/catalog.ts";
export { catalogMarkdown } from "./src/catalog_markdown.ts";
export { type OnInvalid, SchemaProcessor, type SchemaProcessorOptions } from "./src/processors/schema.ts";
export { consoleLogger, type DiagnosticLogger } from "./src/diagnostics.ts";
export { type BackendMetrics, emptyMetrics, type MetricsSnapshot, toPrometheus } from "./src/metrics.ts";
export type { ResolvedContext } from "./src/context.ts";
export { type EventEmitter, ScopedTracker, Tracker, type TrackerOptions, UNKNOWN_EVENT_TYPE } from "./src/tracker.ts";
export { DEFAULT_TRACKER_NAME, emit, getTracker, registerTracker } from "./src/registry.ts";
export {
  type DeliveryFailure,
  type ProcessedEvent,
  RoutingBackend,
  type RoutingBackendOptions,
} from "./src/routing.ts";
export { type TreeNode, walkTree } from "./src/tree.ts";
export { InMemoryBackend } from "./src/backends/memory.ts";
export {
  AsyncRoutingBackend,
  type AsyncRoutingBackendOptions,
  type DeadLetter,
  type DeadLetterInfo,
  defaultDeadLetterPath,
  type OverflowPolicy,
  type ReplayReport,
} from "./src/backends/async_routing.ts";
export { EventBusBackend, type EventBusBackendOptions } from "./src/backends/event_bus.ts";
export type {
  BusHandler,
  BusTransport,
  QueueConsumer,
  QueueMessage,
  QueueTransport,
} from "./src/transports/transport.ts";
export { InProcessQueue, type InProcessQueueOptions } from "./src/transports/in_process_queue.ts";
export { InProcessBus } from "./src/transports/in_process_bus.ts";
export {
  type LogFormat,
  LoggerBackend,
  type LoggerBackendOptions,
  type LogLevel,
  type LogPrefix,
  MAX_EVENT_SIZE,
  OPENEDX_MAX_EVENT_SIZE,
} from "./src/backends/logger.ts";
export { type NameAllowlistOptions, NameAllowlistProcessor } from "./src/processors/name_allowlist.ts";
export { type RedactOptions, RedactProcessor } from "./src/processors/redact.ts";
export {
  eventTimestamp,
  isLegacyEvent,
  LEGACY_CONTEXT_FIELDS,
  LEGACY_DATA_KEYS,
  LegacyFieldMappingProcessor,
  legacyFields,
  PrefixedEventProcessor,
  pythonIsoformat,
  type ShimOptions,
  trackingLogRecord,
} from "./src/processors/shim.ts";
export {
  type FilterType,
  loadRegexWasm,
  RegexFilter,
  type RegexFilterOptions,
  type RegexWasmSource,
  useRegexWasmModule,
} from "./src/processors/regex_filter.ts";
export {
  type BranchInfo,
  createTracker,
  type CreateTrackerOptions,
  defineEngine,
  type DeliveryHooks,
  type Engine,
  type EngineContext,
  type EngineDefinition,
  type EngineFactory,
  type EngineSpec,
  type OptionsSchema,
  type TrackerConfig,
} from "./src/config.ts";
