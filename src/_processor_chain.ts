/**
 * Runs a branch's processors in order; shared by every router-like backend.
 *
 * @module
 */

import { type DiagnosticLogger, typeName } from "./diagnostics.ts";
import { EventEmissionExit, EventRejected } from "./errors.ts";
import type { TrackingEvent } from "./event.ts";
import type { BackendMetrics } from "./metrics.ts";
import { DROP, type Processor, type ProcessorFunction } from "./processor.ts";

function asFunction(processor: Processor): ProcessorFunction {
  if (typeof processor === "function") return processor;
  if (typeof processor === "object" && processor !== null && typeof processor.process === "function") {
    return processor.process.bind(processor);
  }
  throw new TypeError(
    `Processor ${typeName(processor)} is not callable: expected a function or an object with a process() method`,
  );
}

/** An ordered list of processors, with their failures logged and counted. */
export class ProcessorChain {
  #processors: Processor[] = [];
  #steps: ProcessorFunction[] = [];
  readonly #logger: DiagnosticLogger;
  readonly #counters: BackendMetrics;
  #rejection: EventRejected | undefined;

  constructor(logger: DiagnosticLogger, counters: BackendMetrics) {
    this.#logger = logger;
    this.#counters = counters;
  }

  /** The processors in the order they run. */
  get processors(): readonly Processor[] {
    return this.#processors.slice();
  }

  /** True when there is nothing to run. */
  get empty(): boolean {
    return this.#steps.length === 0;
  }

  /**
   * Appends a processor.
   *
   * @throws {TypeError} If it is neither a function nor an object with a `process` method.
   */
  add(processor: Processor): void {
    const step = asFunction(processor);
    this.#processors = [...this.#processors, processor];
    this.#steps = [...this.#steps, step];
  }

  /**
   * Appends every processor of a constructor's `processors` option.
   *
   * @throws {TypeError} If it is not an array, or holds something that is not a processor.
   */
  addAll(owner: string, processors: unknown): void {
    if (!Array.isArray(processors)) {
      throw new TypeError(`Cannot create ${owner}: 'processors' must be an array, got ${typeName(processors)}`);
    }
    for (const processor of processors) this.add(processor);
  }

  /**
   * The {@linkcode EventRejected} behind the last {@linkcode DROP} of
   * {@linkcode ProcessorChain.run}, once: a router that has dead letters
   * sends the event there; others leave it.
   */
  takeRejection(): EventRejected | undefined {
    const rejection = this.#rejection;
    this.#rejection = undefined;
    return rejection;
  }

  /** Runs every processor; returns the resulting event or {@linkcode DROP}. */
  run(event: TrackingEvent): TrackingEvent | typeof DROP {
    const steps = this.#steps;
    let current = event;
    for (let i = 0; i < steps.length; i++) {
      let result;
      try {
        result = steps[i](current);
      } catch (error) {
        if (error instanceof EventEmissionExit) {
          if (error instanceof EventRejected) this.#rejection = error;
          return DROP;
        }
        this.#counters.processorErrors++;
        this.#logger.error(
          `Processor ${i} (${typeName(this.#processors[i])}) failed on event "${current?.name}"; continuing without it`,
          error,
        );
        continue;
      }
      if (result === DROP) return DROP;
      if (result !== undefined) current = result;
    }
    return current;
  }
}
