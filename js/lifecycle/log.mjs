// Logging for hosts: one writer for console-like and pino-like loggers, and a rate limit
// for every line a client can trigger. A client in a reconnect loop at its limit is
// refused hundreds of times a minute; one line per refusal would bury the log and cost
// the host I/O per attempt. Every refusal is still counted exactly (metrics, stats); only
// the lines are limited: at most `burst` per kind per interval, then one summary line
// saying how many were suppressed.
//
// Runtime-neutral: no `node:` import.

/** @typedef {'debug' | 'info' | 'warn' | 'error' | 'silent'} LogLevel */
/** @typedef {Exclude<LogLevel, 'silent'>} LineLevel */
/**
 * @typedef {object} Logger
 * @property {(...args: any[]) => void} [debug]
 * @property {(...args: any[]) => void} [info]
 * @property {(...args: any[]) => void} [warn]
 * @property {(...args: any[]) => void} [error]
 * @property {(...args: any[]) => void} [log]
 */
/** @typedef {(level: LineLevel, msg: string, fields: Record<string, unknown>) => void} LogFn */

/** @type {Readonly<Record<LogLevel, number>>} */
export const LEVELS = Object.freeze({ debug: 10, info: 20, warn: 30, error: 40, silent: 100 });

/** @param {unknown} value */
const isObject = (value) => value !== null && typeof value === 'object';

/**
 * Checks `logger` and `level` (throwing `invalid(message)`) and returns one function that
 * writes a JSON line to a console-like logger, or `(fields, message)` to a pino-like one
 * (told apart by `child` and `levels`). A throwing logger never breaks the caller: lines
 * are written on disconnect paths, where a throw would cost a release.
 *
 * @param {Logger | undefined} logger   default `console`
 * @param {LogLevel | undefined} level  minimum level written (default `info`)
 * @param {(message: string) => Error} invalid
 * @returns {LogFn}
 */
export function makeLog(logger, level, invalid) {
  const min = level ?? 'info';
  // hasOwn: `in` would accept inherited names ('constructor', 'toString').
  if (typeof min !== 'string' || !Object.hasOwn(LEVELS, min)) {
    throw invalid(`logLevel must be one of ${Object.keys(LEVELS).join(', ')}, got ${String(level)}`);
  }
  if (
    logger !== undefined &&
    !(isObject(logger) && ['debug', 'info', 'warn', 'error', 'log'].some((m) => typeof (/** @type {any} */ (logger)[m]) === 'function'))
  ) {
    throw invalid('logger must be a console-like or pino-like object (with debug/info/warn/error or log methods)');
  }
  const floor = LEVELS[min];
  const sink = /** @type {any} */ (logger ?? console);
  const structured = typeof sink.child === 'function' && typeof sink.levels === 'object';
  return (lvl, msg, fields) => {
    if (LEVELS[lvl] < floor) return;
    const write = sink[lvl] ?? sink.log;
    if (typeof write !== 'function') return;
    try {
      if (structured) write.call(sink, fields, msg);
      else write.call(sink, JSON.stringify({ level: lvl, time: new Date().toISOString(), msg, ...fields }));
    } catch {
      // Logging must never turn a release into a failure.
    }
  };
}

/** Default rate limit of client-triggered lines: 3 per kind per 10 s. */
export const DEFAULT_LOG_BURST = 3;
export const DEFAULT_LOG_INTERVAL_MS = 10_000;

/**
 * Limits lines per key (a refusal reason, an event type): the first `burst` lines of each
 * interval are written, the rest counted; the count is written as one "suppressed" line
 * when the interval is over (at the next line of that key, or at `flush()`, which the
 * lifecycle calls on its timer and at close). Memory: one entry per key seen in the
 * current interval; keys are a small fixed set (reasons, event types), never user ids.
 */
export class RateLimitedLog {
  /** @type {Map<string, { start: number, written: number, suppressed: number, level: LineLevel, msg: string }>} */
  #windows = new Map();
  #log;
  #burst;
  #intervalMs;
  #now;
  /** Lines not written since this logger was made. */
  suppressed = 0;

  /**
   * @param {LogFn} log
   * @param {{ burst?: number, intervalMs?: number, now?: () => number }} [options]
   */
  constructor(log, options = {}) {
    this.#log = log;
    this.#burst = options.burst ?? DEFAULT_LOG_BURST;
    this.#intervalMs = options.intervalMs ?? DEFAULT_LOG_INTERVAL_MS;
    this.#now = options.now ?? Date.now;
  }

  /**
   * @param {string} key
   * @param {LineLevel} level
   * @param {string} msg
   * @param {Record<string, unknown>} fields
   */
  write(key, level, msg, fields) {
    const now = this.#now();
    let w = this.#windows.get(key);
    if (w && now - w.start >= this.#intervalMs) {
      this.#summary(key, w);
      w = undefined;
    }
    if (!w) {
      w = { start: now, written: 0, suppressed: 0, level, msg };
      this.#windows.set(key, w);
    }
    if (w.written < this.#burst) {
      w.written++;
      this.#log(level, msg, fields);
    } else {
      w.suppressed++;
      this.suppressed++;
    }
  }

  /** Writes the summaries of intervals that are over (all of them with `all`). */
  flush(all = false) {
    const now = this.#now();
    for (const [key, w] of this.#windows) {
      if (all || now - w.start >= this.#intervalMs) this.#summary(key, w);
    }
  }

  /**
   * @param {string} key
   * @param {{ start: number, suppressed: number, level: LineLevel, msg: string }} w
   */
  #summary(key, w) {
    this.#windows.delete(key);
    if (w.suppressed > 0) {
      this.#log(w.level, `${w.msg} (suppressed ${w.suppressed} similar lines)`, { key, suppressed: w.suppressed, intervalMs: this.#intervalMs });
    }
  }
}

/**
 * Levels of the core's events: near-limit is the alarm the incident lacked, so it warns.
 * @type {Readonly<Record<string, LineLevel>>}
 */
export const EVENT_LEVELS = Object.freeze({
  'near-limit': 'warn',
  'limit-reached': 'warn',
  rejected: 'warn',
  evicted: 'info',
  expired: 'info',
});

/**
 * An `onEvent` callback that logs a store's events, rate-limited per event type and
 * reason (a client looping at its limit makes a `rejected` event per attempt).
 * @param {{ logger?: Logger, level?: LogLevel, burst?: number, intervalMs?: number } | undefined} options
 * @param {(message: string) => Error} invalid
 * @returns {((event: { type: string, reason?: string }) => void) & { flush(all?: boolean): void }}
 */
export function eventLogger(options, invalid) {
  const opts = options ?? {};
  const limited = new RateLimitedLog(makeLog(opts.logger, opts.level, invalid), { burst: opts.burst, intervalMs: opts.intervalMs });
  const onEvent = (/** @type {{ type: string, reason?: string }} */ event) =>
    limited.write(event.reason ? `${event.type}:${event.reason}` : event.type, EVENT_LEVELS[event.type] ?? 'info', 'socket-lease event', {
      event: event.type,
      ...event,
      type: undefined,
    });
  onEvent.flush = (all = false) => limited.flush(all);
  return onEvent;
}
