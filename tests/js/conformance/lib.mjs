// The host-independent half of the conformance suite: start a host as a child process
// from its descriptor (hosts.mjs), talk to it only over HTTP and WebSocket, read its
// process tree's memory from /proc, and always tear everything down. Not a test file.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import crypto from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The first line every host prints on stdout once it listens (the Node demo's). */
export const LISTENING = /^socket-lease demo listening on (http:\/\/127\.0\.0\.1:\d+)\s*$/;

// Settings of the host contract: inherited values of these would leak into the hosts.
const CONTRACT_ENV = /^(HOST|PORT|REDIS_URL|SOCKET_LEASE_.*)$/;

/** @typedef {import('./hosts.mjs').HostDescriptor} HostDescriptor */

/**
 * Every host process started and not yet known to be gone, by pid (a process group each).
 * @type {Map<number, () => void>}
 */
const live = new Map();
// Last resort if the runner exits without running `after` (an uncaught error): no host
// process group outlives this process.
process.on('exit', () => {
  for (const kill of live.values()) kill();
});

/**
 * Sends `signal` to every process of the group led by `pid` (the host and what it
 * started, e.g. workerd under the Cloudflare launcher). Only groups this file created.
 * @param {number} pid
 * @param {NodeJS.Signals} signal
 */
function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

/**
 * @typedef {object} HostProcess
 * @property {string} url          http://127.0.0.1:PORT, from the first stdout line
 * @property {number} pid
 * @property {Record<string, string>} env   what the host was started with
 * @property {() => string} log    stdout and stderr so far (for failure messages)
 * @property {Promise<{ code: number | null, signal: NodeJS.Signals | null }>} exited
 * @property {(signal?: NodeJS.Signals) => void} signal   to the host process itself
 * @property {() => Promise<void>} stop   SIGTERM to the group, SIGKILL after 5 s; idempotent
 */

/**
 * Starts a host from its descriptor with `env` (the contract's variables) on 127.0.0.1,
 * PORT=0, and resolves once it printed its URL.
 * @param {HostDescriptor} host
 * @param {Record<string, string>} env
 * @param {{ startTimeoutMs?: number }} [opts]
 * @returns {Promise<HostProcess>}
 */
export async function startHost(host, env, opts = {}) {
  /** @type {Record<string, string>} */
  const inherited = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !CONTRACT_ENV.test(k)) inherited[k] = v;
  /** @type {Record<string, string>} */
  const hostEnv = { ...host.env, ...env, HOST: '127.0.0.1', PORT: '0' };
  for (const name of Object.keys(host.unsupportedEnv ?? {})) delete hostEnv[name];
  const [command, ...args] = host.command;
  // detached: its own process group, so stop() reaches whatever it starts too.
  const proc = spawn(command, args, { cwd: ROOT, env: { ...inherited, ...hostEnv }, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const pid = /** @type {number} */ (proc.pid);
  let log = '';
  // Keep the last 64 KiB: enough for a failure message, bounded for a chatty host.
  const append = (/** @type {string} */ d) => {
    log += d;
    if (log.length > 131_072) log = log.slice(-65_536);
  };
  /** @type {{ code: number | null, signal: NodeJS.Signals | null } | null} */
  let exitStatus = null;
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => {
      exitStatus = { code, signal };
      resolve(exitStatus);
    });
  });
  live.set(pid, () => signalGroup(pid, 'SIGKILL'));
  proc.stderr.setEncoding('utf8').on('data', append);
  proc.stdout.setEncoding('utf8');
  let stopping = null;
  const stop = () => {
    stopping ??= (async () => {
      if (exitStatus === null) signalGroup(pid, 'SIGTERM');
      const gone = await Promise.race([exited.then(() => true), delay(5000).then(() => false)]);
      // SIGKILL the group whatever happened: a leader that exited may have left children.
      if (!gone || groupMembers(pid).length > 0) signalGroup(pid, 'SIGKILL');
      await exited;
      for (let i = 0; i < 100 && groupMembers(pid).length > 0; i++) await delay(20);
      live.delete(pid);
      proc.stdin.destroy();
    })();
    return stopping;
  };
  const url = await new Promise((resolve, reject) => {
    let line = '';
    let first = true;
    const timer = setTimeout(() => fail(`printed no URL within ${opts.startTimeoutMs ?? 30_000} ms`), opts.startTimeoutMs ?? 30_000);
    /** @param {string} why */
    const fail = (why) => {
      clearTimeout(timer);
      stop().then(() => reject(new Error(`${host.name}: ${host.command.join(' ')} ${why}\n--- its output ---\n${log}`)));
    };
    proc.stdout.on('data', (/** @type {string} */ d) => {
      append(d);
      if (!first) return;
      line += d;
      const nl = line.indexOf('\n');
      if (nl === -1) return;
      first = false;
      const m = LISTENING.exec(line.slice(0, nl));
      if (!m) return fail(`printed "${line.slice(0, nl)}" as its first line, not "socket-lease demo listening on http://127.0.0.1:PORT"`);
      clearTimeout(timer);
      resolve(m[1]);
    });
    exited.then((s) => first && fail(`exited (${s.code ?? s.signal}) before printing its URL`));
  });
  return {
    url,
    pid,
    env: hostEnv,
    log: () => log,
    exited,
    signal: (signal = 'SIGTERM') => {
      if (exitStatus === null) proc.kill(signal);
    },
    stop,
  };
}

/**
 * Pids of the live processes in the process group `pgid`.
 * @param {number} pgid
 */
function groupMembers(pgid) {
  return procTable()
    .filter((p) => p.pgid === pgid && p.state !== 'Z')
    .map((p) => p.pid);
}

function procTable() {
  /** @type {{ pid: number, ppid: number, pgid: number, state: string }[]} */
  const rows = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      rows.push({ pid: Number(name), state: rest[0], ppid: Number(rest[1]), pgid: Number(rest[2]) });
    } catch {
      // exited meanwhile
    }
  }
  return rows;
}

/**
 * Resident memory (VmRSS) of `pid` and all its descendants, in bytes.
 * @param {number} pid
 */
export function treeRss(pid) {
  const table = procTable();
  const pids = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of table) {
      if (!pids.has(p.pid) && pids.has(p.ppid)) {
        pids.add(p.pid);
        grew = true;
      }
    }
  }
  let total = 0;
  for (const p of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // exited meanwhile
    }
  }
  return { bytes: total, processes: pids.size };
}

/**
 * Polls `check` until it returns something truthy; fails naming `what` (and the last
 * value seen) after `timeoutMs`. The bound only keeps a broken host from hanging the run.
 * @template T
 * @param {() => Promise<T> | T} check
 * @param {string} what
 * @param {number} [timeoutMs]
 * @param {() => unknown} [lastSeen] what to show on failure
 * @returns {Promise<T>}
 */
export async function waitFor(check, what, timeoutMs = 10_000, lastSeen) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let value;
    let error;
    try {
      value = await check();
    } catch (e) {
      error = e;
    }
    if (value) return value;
    if (Date.now() > deadline) {
      const seen = lastSeen ? `; last seen: ${JSON.stringify(lastSeen())}` : error ? `; last error: ${error}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${seen}`);
    }
    await delay(25);
  }
}

/**
 * `promise`, or a failure naming `what` after `timeoutMs`.
 * @template T
 * @param {Promise<T>} promise
 * @param {number} timeoutMs
 * @param {string} what
 * @returns {Promise<T>}
 */
export async function within(promise, timeoutMs, what) {
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  });
  try {
    return /** @type {T} */ (await Promise.race([promise, late]));
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The value of an unlabelled series in Prometheus text, or undefined.
 * @param {string} text
 * @param {string} name
 */
export function metricValue(text, name) {
  const m = new RegExp(`^${name}(?:\\{\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** The application heartbeat of the contract. */
export const HEARTBEAT_PING = '{"type":"ping"}';
export const HEARTBEAT_PONG = '{"type":"pong"}';

/**
 * @typedef {object} Client
 * @property {WebSocket} ws
 * @property {Promise<{ code: number, reason: string }>} closed  the close the client saw
 * @property {(text: string) => Promise<any>} echo  sends, resolves with the next reply that is not a pong
 * @property {() => void} stopHeartbeat
 */

/**
 * @typedef {{ ok: true, client: Client } | { ok: false, status: number, headers: import('node:http').IncomingHttpHeaders, body: any, text: string }} ConnectResult
 */

/**
 * Opens a WebSocket with the `ws` client. Resolves with an open client, or with the HTTP
 * refusal (status, headers, body parsed as JSON when it is JSON).
 * @param {string} url
 * @param {{ origin?: string, autoPong?: boolean, heartbeatEveryMs?: number, track?: Set<WebSocket> }} [opts]
 *   heartbeatEveryMs: send the application heartbeat this often (hosts that do not ping)
 * @returns {Promise<ConnectResult>}
 */
export function connect(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      handshakeTimeout: 10_000,
      autoPong: opts.autoPong ?? true,
      ...(opts.origin ? { origin: opts.origin } : {}),
    });
    opts.track?.add(ws);
    const closed = new Promise((done) => {
      ws.once('close', (code, reason) => {
        opts.track?.delete(ws);
        done({ code, reason: reason.toString() });
      });
    });
    // An error after the open ends in a close; the close is what the tests look at.
    ws.on('error', () => {});
    /** @type {ReturnType<typeof setInterval> | undefined} */
    let beat;
    const stopHeartbeat = () => clearInterval(beat);
    closed.then(stopHeartbeat);
    ws.once('open', () => {
      if (opts.heartbeatEveryMs) {
        beat = setInterval(() => {
          if (ws.readyState === WebSocket.OPEN) ws.send(HEARTBEAT_PING);
        }, opts.heartbeatEveryMs);
      }
      resolve({ ok: true, client: { ws, closed, echo: (text) => echoOn(ws, text), stopHeartbeat } });
    });
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => {
        let body;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        resolve({ ok: false, status: res.statusCode ?? 0, headers: res.headers, body, text });
        ws.terminate();
      });
    });
    ws.once('error', (e) => {
      if (ws.readyState !== WebSocket.OPEN) reject(e);
    });
  });
}

/**
 * @param {WebSocket} ws
 * @param {string} text
 * @returns {Promise<any>}
 */
function echoOn(ws, text) {
  return new Promise((resolve, reject) => {
    /** @param {import('ws').RawData} data */
    const onMessage = (data) => {
      const reply = data.toString();
      if (reply === HEARTBEAT_PONG) return;
      ws.off('message', onMessage);
      ws.off('close', onClose);
      try {
        resolve(JSON.parse(reply));
      } catch {
        reject(new Error(`reply is not JSON: ${reply.slice(0, 200)}`));
      }
    };
    /** @param {number} code */
    const onClose = (code) => {
      ws.off('message', onMessage);
      reject(new Error(`socket closed (${code}) before the echo of ${JSON.stringify(text.slice(0, 40))}`));
    };
    ws.on('message', onMessage);
    ws.once('close', onClose);
    ws.send(text);
  });
}

/**
 * A raw TCP peer that completes the WebSocket handshake and then does whatever the test
 * makes it do (nothing at all: a half-open peer that never answers a ping).
 * @param {string} wsUrl ws://127.0.0.1:port/path?query
 * @returns {Promise<{ socket: net.Socket, status: number }>}
 */
export function rawHandshake(wsUrl) {
  const url = new URL(wsUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    socket.once('error', reject);
    socket.once('connect', () => {
      const key = crypto.randomBytes(16).toString('base64');
      socket.write(
        `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    let head = '';
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      // Stop reading: from here on the peer is silent (frames, pings pile up unread).
      socket.pause();
      resolve({ socket, status: Number(head.slice(9, 12)) });
    };
    socket.on('data', onData);
  });
}

/**
 * A raw peer that completes the WebSocket handshake itself and then never reads again:
 * whatever the host sends piles up in the kernel's buffers and then in the host (the
 * stream's buffer fills, Node stops reading the kernel socket, the receive window closes).
 * @param {string} wsUrl ws://127.0.0.1:port/path?query
 * @returns {Promise<net.Socket>}
 */
export async function nonReadingPeer(wsUrl) {
  const { socket, status } = await rawHandshake(wsUrl);
  if (status !== 101) {
    socket.destroy();
    throw new Error(`handshake answered ${status}`);
  }
  return socket;
}

/**
 * A masked client text frame (mask key 0, which RFC 6455 allows: the bits are masked
 * with zeros, so the payload bytes stay as they are).
 * @param {string} text ASCII, under 64 KiB
 */
export function maskedTextFrame(text) {
  const payload = Buffer.from(text, 'utf8');
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff]);
  return Buffer.concat([header, Buffer.alloc(4), payload]);
}

/**
 * `n` sockets of `user`, opened one after another by `open`, each with the lease id its
 * echo names: the state every eviction and Origin case starts from, on every host.
 * @template {{ echo: (text: string) => Promise<{ leaseId: string }> }} C
 * @param {(user: string) => Promise<C>} open
 * @param {string} user
 * @param {number} n
 * @returns {Promise<{ c: C, id: string }[]>}
 */
export async function holdSockets(open, user, n) {
  const held = [];
  for (let i = 0; i < n; i++) {
    const c = await open(user);
    held.push({ c, id: (await c.echo(`held ${i}`)).leaseId });
  }
  return held;
}
