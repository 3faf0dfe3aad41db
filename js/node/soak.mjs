#!/usr/bin/env node
// `npm run soak -- [options]`: checks a socket-lease host for leaks, as the incident's
// validation plan asked ("verify no leaks under repeated connections"). Each cycle
// connects, sends a message, awaits the echo and disconnects (cleanly, or by destroying
// the TCP socket for the --abrupt fraction). Then it polls the host's /metrics until
// socket_lease_active_leases is back where it started, and exits non-zero if not.
//
// "No leak" alone is not a pass: a host that already holds every slot of these users
// refuses each cycle and leaks nothing more. So a run also fails when too few of its
// cycles completed (connect, echo, disconnect), and when it was cut short.
//
// Loopback only and bounded in count and time: it is a leak check, not a load generator
// to point at someone else's server.
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';

const USAGE = `Usage: npm run soak -- [options]

  --url <ws-url>          WebSocket endpoint (default ws://127.0.0.1:8080/ws); the user id
                          goes in the "user" query parameter, or replaces {user} in the URL
  --metrics-url <url>     Prometheus endpoint (default: http://<same host:port>/metrics)
  --users <n>             distinct users (default 5, at most ${1_000})
  --cycles <n>            cycles per user (default 200; users x cycles at most ${200_000})
  --concurrency <n>       cycles in flight at once (default 10, at most ${512})
  --abrupt <fraction>     share of cycles that destroy the TCP socket without a close frame (default 0)
  --message <text>        message to send (default "soak")
  --user-prefix <text>    user ids are <prefix><n> (default soak-<pid>-)
  --timeout-ms <n>        per connect / echo (default 10000)
  --drain-timeout-ms <n>  how long to wait for the leases to return (default 30000)
  --max-seconds <n>       stop starting cycles after this long (default 600)
  --min-completed <f>     fail when fewer than this fraction of the cycles that ran
                          completed (connect, echo, disconnect); default 0.5. A run in
                          which no cycle completed fails whatever this is

Exit status (the first that applies):
  0  every cycle ran, at least --min-completed of them completed, leases back, no errors
  6  metrics unreadable: /metrics could not be read after the run, so the leak check
     could not run (not a leak: nothing is known)
  1  leak: socket_lease_active_leases did not come back to its value before the run
  4  locked out: fewer than --min-completed of the cycles completed (none at all, say,
     because the host already holds every slot of these users)
  3  echo failures or connection errors (besides HTTP refusals)
  5  incomplete: --max-seconds stopped the run before every cycle ran
  2  bad usage`;

export const EXIT = Object.freeze({ OK: 0, LEAK: 1, USAGE: 2, ERRORS: 3, LOCKED_OUT: 4, INCOMPLETE: 5, METRICS_UNREADABLE: 6 });

/**
 * @param {string} message
 * @returns {never}
 */
function usage(message) {
  console.error(`soak: ${message}\n\n${USAGE}`);
  process.exit(EXIT.USAGE);
}

/**
 * @param {string | undefined} raw
 * @param {string} name
 * @param {number} fallback
 * @param {number} min
 * @param {number} max
 */
function intOption(raw, name, fallback, min, max) {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) usage(`--${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) usage(`--${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

/**
 * A fraction from 0 to 1 written as a plain decimal. Number() alone would take '' (and
 * `--min-completed=` would silently turn the lock-out check off), '0x1', '1e0', ' 1 '.
 * @param {string | undefined} raw
 * @param {string} name
 * @param {number} fallback
 */
function fractionOption(raw, name, fallback) {
  if (raw === undefined) return fallback;
  const n = /^(?:\d+(?:\.\d+)?|\.\d+)$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= 0 && n <= 1)) usage(`--${name} must be a fraction from 0 to 1 (a decimal such as 0.25), got "${raw}"`);
  return n;
}

/** @param {string} hostname as in URL.hostname (IPv6 in brackets) */
export function isLoopback(hostname) {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || /^::ffff:127\./.test(host);
  return false;
}

/**
 * @param {number[]} values
 * @param {number} p 0..1
 */
function percentile(values, p) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

/** @param {number} ms */
const fmt = (ms) => (Number.isNaN(ms) ? '-' : `${ms.toFixed(2)} ms`);

/**
 * @param {string} text
 * @param {string} name
 */
function sample(text, name) {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        url: { type: 'string' },
        'metrics-url': { type: 'string' },
        users: { type: 'string' },
        cycles: { type: 'string' },
        concurrency: { type: 'string' },
        abrupt: { type: 'string' },
        message: { type: 'string' },
        'user-prefix': { type: 'string' },
        'timeout-ms': { type: 'string' },
        'drain-timeout-ms': { type: 'string' },
        'max-seconds': { type: 'string' },
        'min-completed': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  } catch (err) {
    return usage(/** @type {Error} */ (err).message);
  }
  const o = parsed.values;
  if (o.help) {
    console.log(USAGE);
    return EXIT.OK;
  }

  let url;
  try {
    url = new URL(o.url ?? 'ws://127.0.0.1:8080/ws');
  } catch {
    return usage(`--url is not a URL: ${o.url}`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') usage(`--url must be ws:// or wss://, got ${url.protocol}`);
  if (!isLoopback(url.hostname)) usage(`refusing ${url.hostname}: the soak tool only targets loopback hosts`);
  let metricsUrl;
  try {
    metricsUrl = new URL(o['metrics-url'] ?? `${url.protocol === 'wss:' ? 'https' : 'http'}://${url.host}/metrics`);
  } catch {
    return usage(`--metrics-url is not a URL: ${o['metrics-url']}`);
  }
  if (!isLoopback(metricsUrl.hostname)) usage(`refusing ${metricsUrl.hostname}: the soak tool only targets loopback hosts`);

  const users = intOption(o.users, 'users', 5, 1, 1_000);
  const cycles = intOption(o.cycles, 'cycles', 200, 1, 200_000);
  if (users * cycles > 200_000) usage(`--users x --cycles must be at most 200000, got ${users * cycles}`);
  const concurrency = intOption(o.concurrency, 'concurrency', 10, 1, 512);
  const timeoutMs = intOption(o['timeout-ms'], 'timeout-ms', 10_000, 100, 600_000);
  const drainTimeoutMs = intOption(o['drain-timeout-ms'], 'drain-timeout-ms', 30_000, 0, 3_600_000);
  const maxSeconds = intOption(o['max-seconds'], 'max-seconds', 600, 1, 3_600);
  const abrupt = fractionOption(o.abrupt, 'abrupt', 0);
  const minCompleted = fractionOption(o['min-completed'], 'min-completed', 0.5);
  const message = o.message ?? 'soak';
  const prefix = o['user-prefix'] ?? `soak-${process.pid}-`;

  /** @param {number} user */
  const urlFor = (user) => {
    const id = `${prefix}${user}`;
    if (url.href.includes('%7Buser%7D') || url.href.includes('{user}')) {
      return url.href.replace(/%7Buser%7D|\{user\}/g, encodeURIComponent(id));
    }
    const u = new URL(url);
    u.searchParams.set('user', id);
    return u.href;
  };

  /** @returns {Promise<number | undefined>} */
  const activeLeases = async () => {
    const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`GET ${metricsUrl} answered ${res.status}`);
    return sample(await res.text(), 'socket_lease_active_leases');
  };

  let startActive;
  try {
    startActive = await activeLeases();
  } catch (err) {
    console.error(`soak: cannot read ${metricsUrl}: ${/** @type {Error} */ (err).message}`);
    return EXIT.ERRORS;
  }
  if (startActive === undefined) {
    console.error(`soak: ${metricsUrl} has no socket_lease_active_leases series`);
    return EXIT.ERRORS;
  }
  // Loud: leases held before the run are either other clients' or leaked ones, and when
  // they are these users' (an earlier run with the same --user-prefix), they alone can
  // lock this run out while the leak check sees nothing new.
  const baselineWarning =
    startActive > 0
      ? `WARNING: the host already held ${startActive} lease${startActive === 1 ? '' : 's'} before this run (socket_lease_active_leases). ` +
        `Other clients, or leases nobody released: if they belong to these users (an earlier run with --user-prefix ${JSON.stringify(prefix)}), the host has locked them out.`
      : null;
  if (baselineWarning) console.error(`soak: ${baselineWarning}`);

  const total = users * cycles;
  /** @type {number[]} */ const connectMs = [];
  /** @type {number[]} */ const roundTripMs = [];
  /** @type {Map<string, number>} */ const refusals = new Map();
  /** @type {Map<string, number>} */ const errors = new Map();
  // Sockets of each user this run holds open right now, to tell a refusal caused by this
  // run's own sockets (concurrency above the host's limit) from one of a user who holds
  // nothing here (the host counts leases no socket of this run has).
  const openByUser = new Array(users).fill(0);
  let refusedHoldingNothing = 0;
  let completed = 0;
  let connects = 0;
  let echoFailures = 0;
  let abruptCount = 0;
  let done = 0;
  let next = 0;
  const started = performance.now();
  const deadline = started + maxSeconds * 1000;

  /** @param {Map<string, number>} map @param {string} key */
  const bump = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);

  /** One cycle: connect, send, await echo, disconnect. Never throws. */
  const cycle = (/** @type {number} */ n) =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const user = n % users;
      const ws = new WebSocket(urlFor(user), { handshakeTimeout: timeoutMs });
      /** @type {NodeJS.Timeout | undefined} */
      let timer;
      let finished = false;
      let opened = false;
      /** @param {() => void} [then] */
      const finish = (then) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        if (opened) openByUser[user]--;
        then?.();
        resolve(undefined);
      };
      ws.once('unexpected-response', (_req, res) => {
        bump(refusals, String(res.statusCode));
        if (openByUser[user] === 0) refusedHoldingNothing++;
        res.resume();
        ws.terminate();
        finish();
      });
      // `on`, not `once`: terminating a socket that is still connecting (after a refusal)
      // emits one more error, which is not a connection error of its own.
      ws.on('error', (err) => {
        if (finished) return;
        bump(errors, /** @type {NodeJS.ErrnoException} */ (err).code ?? err.message);
        ws.terminate();
        finish();
      });
      let echoed = false;
      ws.once('close', () => {
        // Closed by the server before the echo arrived (a 4008 eviction, say).
        if (!finished && !echoed) {
          echoFailures++;
          finish();
        }
      });
      ws.once('open', () => {
        connects++;
        opened = true;
        openByUser[user]++;
        const t1 = performance.now();
        connectMs.push(t1 - t0);
        timer = setTimeout(() => {
          echoFailures++;
          finish(() => ws.terminate());
        }, timeoutMs);
        ws.once('message', (data) => {
          echoed = true;
          clearTimeout(timer);
          let ok = false;
          try {
            const reply = JSON.parse(data.toString());
            ok = reply.type === 'echo' && reply.data === message;
          } catch {
            ok = false;
          }
          if (ok) roundTripMs.push(performance.now() - t1);
          else echoFailures++;
          if (Math.random() < abrupt) {
            // No close frame: the TCP socket is destroyed, as when a browser tab dies.
            abruptCount++;
            if (ok) completed++;
            finish(() => ws.terminate());
          } else {
            ws.once('close', () => {
              if (ok && !finished) completed++;
              finish();
            });
            ws.close(1000);
          }
        });
        ws.send(message);
      });
    });

  const progress = setInterval(() => {
    const refused = [...refusals.values()].reduce((a, b) => a + b, 0);
    console.error(`soak: ${done}/${total} cycles, ${connects} connected, ${refused} refused, ${echoFailures} echo failures`);
  }, 1000);
  const workers = Array.from({ length: Math.min(concurrency, total) }, async () => {
    while (next < total && performance.now() < deadline) {
      await cycle(next++);
      done++;
    }
  });
  await Promise.all(workers);
  clearInterval(progress);
  const elapsedS = (performance.now() - started) / 1000;

  const refusedTotal = [...refusals.values()].reduce((a, b) => a + b, 0);
  const errorTotal = [...errors.values()].reduce((a, b) => a + b, 0);
  const cutShort = done < total;
  const share = done === 0 ? 0 : completed / done;
  console.log(`soak: ${done} cycles against ${url.origin}${url.pathname} in ${elapsedS.toFixed(1)} s (${(done / elapsedS).toFixed(0)} cycles/s)`);
  if (cutShort) console.log(`soak: stopped early at --max-seconds ${maxSeconds}: ${total - done} of ${total} cycles never ran`);
  console.log(`  completed          ${completed} of ${done} (${(share * 100).toFixed(1)}%; connect, echo, disconnect)`);
  console.log(`  connects           ${connects} (${abruptCount} ended abruptly)`);
  console.log(`  refused            ${refusedTotal}${refusedTotal ? ` (${[...refusals].map(([s, n]) => `HTTP ${s}: ${n}`).join(', ')})` : ''}`);
  if (refusedTotal) console.log(`    of a user holding no socket of this run   ${refusedHoldingNothing}`);
  console.log(`  connection errors  ${errorTotal}${errorTotal ? ` (${[...errors].map(([c, n]) => `${c}: ${n}`).join(', ')})` : ''}`);
  console.log(`  echo failures      ${echoFailures}`);
  console.log(`  connect latency    p50 ${fmt(percentile(connectMs, 0.5))}  p99 ${fmt(percentile(connectMs, 0.99))}`);
  console.log(`  round trip         p50 ${fmt(percentile(roundTripMs, 0.5))}  p99 ${fmt(percentile(roundTripMs, 0.99))}`);

  // The leak check: every lease this run took must come back, by release or by the
  // host's heartbeat for the abrupt ones. Below the start is fine: other clients left.
  const drainDeadline = Date.now() + drainTimeoutMs;
  /** @type {number | undefined} */
  let active;
  for (;;) {
    try {
      active = await activeLeases();
    } catch (err) {
      console.error(`soak: reading metrics failed: ${/** @type {Error} */ (err).message}`);
      active = undefined;
    }
    if ((active !== undefined && active <= startActive) || Date.now() >= drainDeadline) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Unreadable is not a leak: the check could not run, and a monitoring script must be
  // able to tell "the host leaks" from "the host's /metrics is down".
  const unreadable = active === undefined;
  const leaked = active !== undefined && active > startActive;
  if (unreadable) {
    console.log(`  METRICS UNREADABLE: socket_lease_active_leases could not be read for ${drainTimeoutMs} ms after the run; no leak check`);
  } else if (leaked) {
    console.log(`  LEAK: socket_lease_active_leases is ${active} after ${drainTimeoutMs} ms (expected at most ${startActive}, its value before the run)`);
  } else {
    console.log(`  leases             back to ${active}${startActive ? ` (${startActive} before the run): no new leak` : ': no leak'}`);
  }
  if (baselineWarning) console.log(`  ${baselineWarning}`);

  const lockedOut = share < minCompleted || (done > 0 && completed === 0);
  if (lockedOut) {
    const why =
      refusedHoldingNothing > 0 && refusedHoldingNothing * 2 >= refusedTotal
        ? `${refusedHoldingNothing} of the ${refusedTotal} refusals came while the user held no socket of this run: ` +
          'the host counts leases that no open socket holds (leaked by an earlier run, or held by other clients). That is the incident: users locked out.'
        : refusedTotal > 0
          ? "most refusals came while this run's own sockets held the user's slots: lower --concurrency (per user) below the host's limit, or pass --min-completed 0"
          : 'cycles failed without refusals: see the connection errors and echo failures above';
    console.log(`  LOCKED OUT: ${completed} of ${done} cycles completed (${(share * 100).toFixed(1)}%, --min-completed ${minCompleted}): ${why}`);
  }
  if (cutShort) console.log(`  INCOMPLETE: ${done} of ${total} cycles ran before --max-seconds ${maxSeconds}; raise it or lower --cycles`);
  if (unreadable) return EXIT.METRICS_UNREADABLE;
  if (leaked) return EXIT.LEAK;
  if (lockedOut) return EXIT.LOCKED_OUT;
  if (echoFailures > 0 || errorTotal > 0) return EXIT.ERRORS;
  if (cutShort) return EXIT.INCOMPLETE;
  return EXIT.OK;
}

// Run only as a command, so tests can import isLoopback without starting a soak.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main();
}
