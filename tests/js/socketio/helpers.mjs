// Clients of the Socket.IO tests: a real socket.io-client, and raw engine.io peers (over
// the `ws` client or a bare TCP socket) that do what socket.io-client never would: stop
// answering pings, stop reading. Not a test file.
import crypto from 'node:crypto';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import WebSocket from 'ws';
import { io as ioClient } from 'socket.io-client';

/**
 * @typedef {object} Client
 * @property {import('socket.io-client').Socket} socket
 * @property {Promise<{ code: number, reason: string } | null>} told   what socket-lease:closed said, or null at a disconnect without it
 * @property {Promise<string>} disconnected   the disconnect reason socket.io-client reports
 * @property {(data: unknown) => Promise<any>} echo   emits `echo`, resolves with the next `echo`
 */

/**
 * @typedef {{ ok: true, client: Client } | { ok: false, message: string, data: any, socket: import('socket.io-client').Socket }} ConnectResult
 */

/**
 * Connects a socket.io-client (its own engine connection, WebSocket only, no automatic
 * reconnection). Resolves with the connected client or the connect_error.
 * @param {string} url
 * @param {{ user?: unknown, auth?: Record<string, unknown>, origin?: string, track?: Set<import('socket.io-client').Socket>, timeoutMs?: number }} [opts]
 * @returns {Promise<ConnectResult>}
 */
export function connect(url, opts = {}) {
  const socket = ioClient(url, {
    forceNew: true,
    reconnection: false,
    transports: ['websocket'],
    auth: opts.auth ?? (opts.user === undefined ? {} : { user: opts.user }),
    ...(opts.origin ? { extraHeaders: { origin: opts.origin } } : {}),
    timeout: opts.timeoutMs ?? 10_000,
  });
  opts.track?.add(socket);
  /** @type {{ code: number, reason: string } | null} */
  let toldWith = null;
  socket.on('socket-lease:closed', (d) => (toldWith = d));
  const disconnected = new Promise((resolve) => {
    socket.once('disconnect', (reason) => {
      opts.track?.delete(socket);
      resolve(reason);
    });
  });
  const told = disconnected.then(() => toldWith);
  return new Promise((resolve) => {
    socket.once('connect', () => {
      socket.off('connect_error');
      resolve({ ok: true, client: { socket, told, disconnected, echo: (data) => echoOn(socket, data) } });
    });
    socket.once('connect_error', (/** @type {any} */ err) => {
      opts.track?.delete(socket);
      socket.close();
      resolve({ ok: false, message: err.message, data: err.data, socket });
    });
  });
}

/**
 * @param {import('socket.io-client').Socket} socket
 * @param {unknown} data
 */
function echoOn(socket, data) {
  return new Promise((resolve, reject) => {
    const onEcho = (/** @type {any} */ reply) => {
      socket.off('disconnect', onGone);
      resolve(reply);
    };
    const onGone = (/** @type {string} */ reason) => {
      socket.off('echo', onEcho);
      reject(new Error(`disconnected (${reason}) before the echo`));
    };
    socket.once('echo', onEcho);
    socket.once('disconnect', onGone);
    socket.emit('echo', data);
  });
}

/**
 * The engine.io URL of a Socket.IO server for a raw WebSocket peer.
 * @param {string} httpUrl
 */
export const engineUrl = (httpUrl) => `${httpUrl.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;

/**
 * A peer that speaks engine.io over a WebSocket itself: connects to the main namespace
 * as `user` and then never answers a ping (engine.io must close it after pingInterval +
 * pingTimeout). Resolves once connected, with the sid and the socket's close.
 * @param {string} httpUrl
 * @param {string} user
 */
export function silentPeer(httpUrl, user) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(engineUrl(httpUrl), { autoPong: true });
    const closed = new Promise((done) => ws.once('close', (code) => done(code)));
    ws.once('error', reject);
    ws.on('message', (data) => {
      const text = data.toString();
      // 0: engine.io open; 40: the namespace connect; 44: its connect_error; 2: a ping, left unanswered.
      if (text.startsWith('0{')) ws.send(`40${JSON.stringify({ user })}`);
      else if (text.startsWith('40')) resolve({ ws, sid: JSON.parse(text.slice(2)).sid, closed });
      else if (text.startsWith('44')) reject(new Error(`connect_error ${text.slice(2)}`));
    });
  });
}

/**
 * A peer that completes the engine.io WebSocket handshake and the namespace connect over
 * a bare TCP socket, then never reads again: what the server sends piles up in the
 * kernel's buffers and then in the server. `send(text)` writes a masked text frame.
 * @param {string} httpUrl
 * @param {string} user
 */
export function nonReadingPeer(httpUrl, user) {
  const url = new URL(engineUrl(httpUrl));
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(
        `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    const send = (/** @type {string} */ text) => socket.write(maskedTextFrame(text));
    let seen = '';
    let opened = false;
    /** @param {Buffer} chunk */
    const onData = (chunk) => {
      seen += chunk.toString('latin1');
      if (!seen.startsWith('HTTP/1.1 101') && seen.includes('\r\n\r\n')) {
        socket.destroy();
        reject(new Error(`handshake answered ${seen.slice(0, 40)}`));
        return;
      }
      // The namespace connect only after engine.io's open packet, as a real client does:
      // engine.io's handshake awaits generateId(), and a frame that arrives meanwhile
      // reaches no listener (Socket.IO then closes a client that talks out of turn).
      if (!opened && seen.includes('0{"sid"')) {
        opened = true;
        send(`40${JSON.stringify({ user })}`);
      }
      if (!seen.includes('40{"sid"')) return;
      // Connected: from here on nothing is read.
      socket.off('data', onData);
      socket.off('error', reject);
      socket.pause();
      socket.on('error', () => {});
      resolve({ socket, send });
    };
    socket.on('data', onData);
  });
}

/**
 * A masked client text frame (mask key 0: the payload bytes stay as they are).
 * @param {string} text
 */
export function maskedTextFrame(text) {
  const payload = Buffer.from(text, 'utf8');
  const len = payload.length;
  const header = len < 126 ? Buffer.from([0x81, 0x80 | len]) : Buffer.from([0x81, 0x80 | 126, len >> 8, len & 0xff]);
  return Buffer.concat([header, Buffer.alloc(4), payload]);
}

/**
 * Polls `check` until it is truthy; fails naming `what` after `timeoutMs`.
 * @template T
 * @param {() => Promise<T> | T} check
 * @param {string} what
 * @param {number} [timeoutMs]
 * @returns {Promise<T>}
 */
export async function waitFor(check, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(20);
  }
}
