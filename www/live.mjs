// The live tab: real WebSockets to the demo server (`npm start`), their echoes, and the
// server's own view (`/api/users/:userId`, `/metrics`) polled once a second while the tab
// is shown, and less and less often (up to every 30 s) while the server does not answer.
//
// A refused upgrade is an HTTP 429 with `Retry-After` and a JSON body, but a browser's
// WebSocket API exposes none of it (only a close with code 1006). So when a socket fails
// before opening, the page reads the server's own record of that user's last refusal
// (`lastRefusal` in `/api/users/:userId`: status, reason, limit, active, Retry-After,
// kept by the guard) instead of guessing from counters and the browser's clock. Its `seq`
// tells a refusal this page has not shown yet from an older one.
//
// The Socket.IO demo (`npm run start:socketio`) serves the same HTTP routes but speaks
// Socket.IO on `/socket.io/`: the user in `auth.user`, an `echo` event answered by an
// `echo` event, a refusal as `connect_error` whose `data` the page reads directly, and a
// close told by a `socket-lease:closed` event { code, reason } before the disconnect. The
// page asks the server which one it speaks (`transport` in /healthz) rather than guessing
// from the port or probing for the Socket.IO client: the host knows what it speaks, and a
// probe would be a 404 on every WebSocket host. Socket.IO's own browser client, which the
// server serves (serveClient), is loaded only then.
import { Timeline } from './chart.mjs';
import { clock, gauge, h, idView, leaseIds, renderLog, rerender } from './ui.mjs';
import { gaugeLevel } from './sim.mjs';

// The server's registry uses the library's default warn ratio; /api/users does not report it.
const SERVER_WARN_RATIO = 0.8;
const POLL_MS = 1000;
// While the server does not answer: retry after 2, 4, 8, 16 s, then every 30 s.
const RETRY_MAX_MS = 30_000;
/** What the fetch helpers answer when the request never got an answer (network error). */
const DOWN = Symbol('down');
/**
 * Socket.IO's browser client as the Socket.IO server serves it (never a CDN). A variable,
 * not a literal, in the import() below: it is a URL of the server, not a module here.
 */
const SOCKET_IO_CLIENT = '/socket.io/socket.io.esm.min.js';
/** The event the Socket.IO guard sends before it disconnects a socket (js/socketio/guard.cjs). */
const SOCKET_IO_CLOSED = 'socket-lease:closed';

/** Retry-After's whole seconds for a retry time in ms, as the hosts round it (js/lifecycle/protocol.mjs). */
const retrySeconds = (/** @type {number} */ ms) => Math.max(1, Math.ceil(ms / 1000));

/**
 * A refusal as the page shows it: the server's record (`lastRefusal`, WebSocket hosts) or
 * Socket.IO's `connect_error` data.
 * @typedef {{ status: number, reason: string, limit: number | null, active: number | null, retryAfterS: number | null }} Refusal
 */

/**
 * One connection of the page to the demo server, whichever protocol it speaks.
 * @typedef {object} Channel
 * @property {(text: string) => boolean} send  false when it is not open
 * @property {() => void} close                 by the page (1000 on a WebSocket)
 */

/**
 * What a channel reports; exactly one of the last four ends it.
 * @typedef {object} ChannelEvents
 * @property {() => void} open
 * @property {(msg: any) => void} message                          a reply, parsed
 * @property {(code: number | null, reason: string) => void} closed after it opened; code null when the server gave none
 * @property {() => void} cancelled                                closed by the page before it opened
 * @property {() => void} failedBeforeOpen                         a WebSocket closed before opening (the browser hides why)
 * @property {(refusal: Refusal) => void} refused                  Socket.IO's connect_error with the server's answer
 */

/**
 * A WebSocket to `/ws?user=<id>`.
 * @param {string} url
 * @param {ChannelEvents} ev
 * @returns {Channel}
 */
function openWebSocket(url, ev) {
  const ws = new WebSocket(url);
  let wasOpen = false;
  let closedByPage = false;
  ws.addEventListener('open', () => {
    wasOpen = true;
    ev.open();
  });
  ws.addEventListener('message', (event) => {
    let msg;
    try {
      msg = JSON.parse(String(event.data));
    } catch {
      msg = { type: 'text', data: String(event.data) };
    }
    ev.message(msg);
  });
  ws.addEventListener('close', (event) => {
    if (wasOpen) ev.closed(event.code, event.reason);
    else if (closedByPage) ev.cancelled();
    else ev.failedBeforeOpen();
  });
  return {
    send(text) {
      if (ws.readyState !== WebSocket.OPEN) return false;
      ws.send(text);
      return true;
    },
    close() {
      closedByPage = true;
      ws.close(1000, 'closed by the demo page');
    },
  };
}

/**
 * A Socket.IO socket for `auth.user`. Over WebSocket only (no long-polling requests to
 * cut when it ends), and never reconnecting by itself: socket.io-client would retry a
 * lost transport in a loop, while this page connects only when asked.
 * @param {typeof import('socket.io-client').io} io
 * @param {string} userId
 * @param {ChannelEvents} ev
 * @returns {Channel}
 */
function openSocketIo(io, userId, ev) {
  const socket = io({ auth: { user: userId }, forceNew: true, reconnection: false, transports: ['websocket'] });
  let closedByPage = false;
  /** @type {{ code: number, reason: string } | null} what the guard said before disconnecting */
  let told = null;
  socket.on('connect', () => ev.open());
  socket.on('echo', (/** @type {any} */ msg) => ev.message(msg));
  socket.on(SOCKET_IO_CLOSED, (/** @type {{ code: number, reason: string }} */ why) => {
    told = why;
  });
  socket.on('disconnect', (reason) => {
    if (closedByPage) ev.closed(1000, 'closed by the demo page');
    else if (told) ev.closed(told.code, told.reason);
    else ev.closed(null, reason);
  });
  socket.on('connect_error', (err) => {
    // Nothing retries: close the manager's connection too (a no-op if already closed).
    socket.disconnect();
    if (closedByPage) return;
    const data = /** @type {any} */ (err).data;
    if (data && typeof data.status === 'number') {
      ev.refused({
        status: data.status,
        reason: String(data.reason ?? err.message),
        limit: data.limit ?? null,
        active: data.active ?? null,
        retryAfterS: typeof data.retryAfterMs === 'number' ? retrySeconds(data.retryAfterMs) : null,
      });
    } else {
      // No answer from the guard: the transport failed (the server is gone).
      ev.failedBeforeOpen();
    }
  });
  return {
    send(text) {
      if (!socket.connected) return false;
      socket.emit('echo', text);
      return true;
    },
    close() {
      closedByPage = true;
      const wasConnected = socket.connected;
      // Connected: 'disconnect' follows, synchronously. Not yet: socket.io-client says
      // nothing more, so the page ends it here.
      socket.disconnect();
      if (!wasConnected) ev.cancelled();
    },
  };
}

/**
 * Prometheus text to a map from `name{labels}` to value.
 * @param {string} text
 */
export function parseMetrics(text) {
  /** @type {Map<string, number>} */
  const values = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    values.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return values;
}

/** Series shown in the metrics table, with a plain-language name. */
const SHOWN_METRICS = [
  ['socket_lease_active_leases', 'leases held (all users)'],
  ['socket_lease_sockets_open', 'sockets open'],
  ['socket_lease_users', 'users with leases'],
  ['socket_lease_upgrades_total{status="101"}', 'upgrades accepted'],
  ['socket_lease_upgrades_total{status="429"}', 'upgrades refused with 429'],
  ['socket_lease_rejected_total{reason="user-limit"}', 'refusals: user-limit'],
  ['socket_lease_released_total', 'leases released on close'],
  ['socket_lease_expired_total', 'leases expired (no heartbeat)'],
  ['socket_lease_evicted_total', 'leases evicted'],
  ['socket_lease_unknown_release_total', 'unknown releases (leak detector)'],
];

/**
 * @typedef {object} LiveSocket
 * @property {number} n
 * @property {string} userId
 * @property {Channel} conn
 * @property {'connecting' | 'open' | 'closing'} state
 * @property {string | null} leaseId   learned from the first echo
 * @property {string | null} lastEcho
 */

export function mountLive() {
  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const userInput = /** @type {HTMLInputElement} */ ($('live-user'));
  const connectButton = /** @type {HTMLButtonElement} */ ($('live-connect'));
  const socketsBox = $('live-sockets');
  const serverBox = $('live-server');
  const metricsBox = $('live-metrics');
  const refusalBox = $('live-refusal');
  const statusLine = $('live-status');
  const logList = $('live-log');
  const updated = $('live-updated');

  const startedAt = Date.now();
  const timeline = new Timeline(/** @type {HTMLCanvasElement} */ ($('live-chart')), {
    series: [
      { key: 'active', label: 'leases held by the watched user', color: 'var(--guarded)' },
      { key: 'sockets', label: 'sockets this page holds open', color: 'var(--ink-soft)', dash: [5, 3] },
    ],
    markers: [{ key: 'refused', label: 'upgrades refused with 429 (server total)', color: 'var(--refused)' }],
    timeLabel: (s) => `t=${clock(s.at - startedAt)}`,
    description: 'Timeline of the live server',
  });

  /** @type {Map<number, LiveSocket>} */
  const sockets = new Map();
  /** @type {Map<string, number>} the newest refusal `seq` already known, per user */
  const seenRefusals = new Map();
  let opened = 0;
  let seq = 0;
  /** @type {{ seq: number, at: number, host: string, type: string, text: string }[]} */
  const log = [];
  /** @type {{ at: number, active: number, sockets: number, refused: number }[]} */
  const samples = [];
  /** @type {any} the last /api/users answer */
  let userView = null;
  /** @type {Map<string, number>} */
  let metrics = new Map();
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;
  /** Whether the tab is shown (polls are scheduled only then). */
  let running = false;
  /** Bumped by every start() and stop(): a start() that finds it moved was overtaken. */
  let shownCount = 0;
  /** Polls in a row that got no answer from the server; 0 while it answers. */
  let failures = 0;
  /** When the server last answered a poll. */
  let lastAnswerAt = 0;
  let polling = false;
  // Set when a poll is asked for while one is on its way; bumped when the watched user changes.
  let pollAgain = false;
  let watchGeneration = 0;
  /** @type {boolean | null} null until /healthz has answered once */
  let available = null;
  /** @type {typeof import('socket.io-client').io | null} set when the server speaks Socket.IO */
  let socketIo = null;

  /**
   * @param {string} host
   * @param {string} type
   * @param {string} text
   */
  function note(host, type, text) {
    log.push({ seq: ++seq, at: Date.now(), host, type, text });
    if (log.length > 300) log.splice(0, log.length - 300);
    renderLog(logList, log, (at) => clock(at - startedAt));
  }

  const watchedUser = () => userInput.value.trim();

  function clearRefusal() {
    refusalBox.hidden = true;
    refusalBox.replaceChildren();
  }

  function wsUrl(/** @type {string} */ userId) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    return `${scheme}://${location.host}/ws?user=${encodeURIComponent(userId)}`;
  }

  function connect() {
    const userId = watchedUser();
    if (userId === '') {
      statusLine.textContent = 'Type a user id first';
      userInput.focus();
      return;
    }
    const n = ++opened;
    // Refusals on record before this socket: the poll's view, or what the page showed.
    const viewSeq = userView && userView.userId === userId ? (userView.lastRefusal?.seq ?? 0) : 0;
    const seqBefore = Math.max(seenRefusals.get(userId) ?? 0, viewSeq);
    /** @type {LiveSocket} */
    const sock = { n, userId, conn: /** @type {any} */ (null), state: 'connecting', leaseId: null, lastEcho: null };
    sockets.set(n, sock);
    /** A channel's end: the socket leaves the list, the server's view is asked for. */
    const ended = () => {
      sockets.delete(n);
      renderSockets();
      void poll();
    };
    /** @type {ChannelEvents} */
    const events = {
      open() {
        sock.state = 'open';
        // Connected: an earlier refusal no longer describes this user's state.
        clearRefusal();
        note('client', 'opened', `socket #${n} for ${userId} is open`);
        statusLine.textContent = `Socket #${n} open`;
        renderSockets();
        void poll();
      },
      message(msg) {
        if (msg?.type === 'echo') {
          sock.leaseId = msg.leaseId ?? sock.leaseId;
          sock.lastEcho = String(msg.data);
          note('server', 'echo', `socket #${n} got its echo: "${msg.data}"`);
        } else {
          note('server', msg?.type ?? 'message', `socket #${n}: ${JSON.stringify(msg)}`);
        }
        renderSockets();
      },
      closed(code, reason) {
        /** @type {Record<number, string>} */
        const why = {
          1000: 'closed by this page',
          1001: 'the server is shutting down',
          4008: 'evicted for a newer connection (4008)',
          4009: 'its lease expired (4009)',
        };
        // Socket.IO without the guard's word: its own disconnect reason ("transport close").
        const text = code === null ? `disconnected (${reason})` : (why[code] ?? `code ${code}`);
        note(code === 1000 ? 'client' : 'server', 'closed', `socket #${n} closed: ${text}`);
        statusLine.textContent = `Socket #${n} closed`;
        ended();
      },
      cancelled() {
        // Disconnected by this page before it opened: not a refusal, not a failure.
        note('client', 'closed', `socket #${n} cancelled before it opened`);
        statusLine.textContent = `Socket #${n} cancelled`;
        ended();
      },
      failedBeforeOpen() {
        void explainRefusal(n, userId, seqBefore);
        ended();
      },
      refused(refusal) {
        showRefusal(n, userId, refusal, 'socket.io');
        ended();
      },
    };
    sock.conn = socketIo ? openSocketIo(socketIo, userId, events) : openWebSocket(wsUrl(userId), events);
    renderSockets();
  }

  /**
   * The socket closed before opening; read the server's record of the user's last
   * refusal. A record newer than the one known when the socket was opened is this
   * socket's answer (or a simultaneous one for the same user: the same answer).
   * @param {number} n
   * @param {string} userId
   * @param {number} seqBefore  the newest refusal `seq` this page knew of for the user
   */
  async function explainRefusal(n, userId, seqBefore) {
    if (socketIo) {
      // Socket.IO says why in connect_error; without it the transport itself failed.
      failedToOpen(`Socket #${n} for ${userId} could not connect, and the server sent no refusal: a network error, or the server is gone.`);
      return;
    }
    const answer = await fetchJson(`/api/users/${encodeURIComponent(userId)}`);
    const view = answer === DOWN ? null : answer;
    /** @type {{ status: number, reason: string, limit: number | null, active: number | null, retryAfterMs: number, retryAfterS: number, at: number, seq: number } | null} */
    const last = view?.lastRefusal ?? null;
    if (!last || last.seq <= seqBefore) {
      failedToOpen(
        `Socket #${n} for ${userId} closed before opening, and the server recorded no new refusal for ${userId}: a network error, or the server is gone.`,
      );
      return;
    }
    seenRefusals.set(userId, Math.max(seenRefusals.get(userId) ?? 0, last.seq));
    showRefusal(n, userId, last, 'http');
  }

  /** @param {string} text */
  function failedToOpen(text) {
    refusalBox.replaceChildren(h('strong', {}, 'Not connected: '), h('span', { dataset: { testid: 'refusal-reason' } }, 'no refusal on record'));
    refusalBox.hidden = false;
    note('client', 'failed', text);
    statusLine.textContent = text;
  }

  /**
   * @param {number} n
   * @param {string} userId
   * @param {Refusal} r
   * @param {'http' | 'socket.io'} via  the WebSocket upgrade's HTTP answer (as the server
   *   recorded it), or Socket.IO's connect_error
   */
  function showRefusal(n, userId, r, via) {
    const held = r.limit === null ? '' : r.reason === 'global-limit' ? ` (${r.active} of ${r.limit} held, all users)` : ` (${r.active} of ${r.limit} held)`;
    const retry = r.retryAfterS === null ? 'no retry time given' : via === 'http' ? `Retry-After ${r.retryAfterS} s` : `retry after ${r.retryAfterS} s`;
    const text =
      via === 'http'
        ? `Socket #${n} for ${userId} refused with HTTP ${r.status} before the upgrade: ${r.reason}${held}, ${retry}.`
        : `Socket #${n} for ${userId} refused with connect_error (status ${r.status}): ${r.reason}${held}, ${retry}.`;
    const explained =
      r.status !== 429
        ? 'The server could not take the connection just now (shutting down, or its lease store failed); retry after the time it gave.'
        : via === 'http'
          ? 'The server answered HTTP 429 with Retry-After before upgrading, not a 1011 "internal error" after it. A browser cannot read that answer (its WebSocket only reports code 1006), so this is the server\u2019s own record of it, from /api/users. For a limit, the retry time is when the oldest lease expires if its heartbeats stop; while those sockets stay open and answer pings, their slots are really in use.'
          : 'Socket.IO refuses inside its own connection: the guard\u2019s middleware answered connect_error, whose data carries what the other hosts\u2019 HTTP 429 says (status, reason, numbers, retry time), and the page reads it directly. The client does not reconnect by itself. For a limit, the retry time is when the oldest lease expires if its heartbeats stop; while those sockets stay open and answer pings, their slots are really in use.';
    refusalBox.replaceChildren(
      h('strong', {}, via === 'http' ? `Refused (HTTP ${r.status}): ` : `Refused (connect_error, status ${r.status}): `),
      h('span', { dataset: { testid: 'refusal-reason' } }, r.reason),
      held ? h('span', { dataset: { testid: 'refusal-held' } }, held) : '',
      h('span', {}, ' · ', h('span', { dataset: { testid: 'refusal-retry' } }, retry)),
      h('p', { class: 'muted' }, explained),
    );
    refusalBox.hidden = false;
    note('server', 'rejected', text);
    statusLine.textContent = text;
  }

  /** @param {LiveSocket} sock @param {string} text */
  function send(sock, text) {
    if (!sock.conn.send(text)) return;
    note('client', 'sent', `socket #${sock.n} sent "${text}"`);
  }

  function renderSockets() {
    const hadFocus = socketsBox.contains(document.activeElement);
    rerender(socketsBox, () => {
      if (sockets.size === 0) return [h('p', { class: 'muted' }, 'No sockets open from this page.')];
      return [
        h(
          'ul',
          { class: 'conns', 'aria-label': 'sockets this page holds' },
          ...[...sockets.values()].map((sock) => {
            const inputId = `live-msg-${sock.n}`;
            return h(
              'li',
              { class: 'conn', dataset: { socket: String(sock.n), state: sock.state } },
              h(
                'div',
                { class: 'conn-head' },
                h('strong', {}, `#${sock.n}`),
                h('span', { class: `state state-${sock.state}` }, sock.state),
                h('span', { class: 'muted' }, `user ${sock.userId}`),
              ),
              sock.leaseId
                ? h('div', { class: 'ids' }, 'lease ', idView(sock.leaseId))
                : h('p', { class: 'muted' }, 'Send a message: the echo names this socket’s lease.'),
              sock.lastEcho !== null ? h('p', { class: 'echo', dataset: { testid: 'echo' } }, 'echo: ', h('q', {}, sock.lastEcho)) : null,
              h(
                'form',
                {
                  class: 'send-form',
                  onsubmit: (/** @type {SubmitEvent} */ e) => {
                    e.preventDefault();
                    const input = /** @type {HTMLInputElement} */ (document.getElementById(inputId));
                    send(sock, input.value === '' ? 'hello' : input.value);
                    input.value = '';
                  },
                },
                h('label', { for: inputId, class: 'visually-hidden' }, `Message for socket #${sock.n}`),
                h('input', { id: inputId, type: 'text', placeholder: 'hello', autocomplete: 'off', dataset: { focus: `msg:${sock.n}` } }),
                h(
                  'button',
                  { type: 'submit', dataset: { focus: `send:${sock.n}` }, 'aria-label': `Send on socket #${sock.n}`, disabled: sock.state !== 'open' },
                  'Send',
                ),
                h(
                  'button',
                  {
                    type: 'button',
                    dataset: { focus: `close:${sock.n}` },
                    'aria-label': `Disconnect socket #${sock.n}`,
                    onclick: () => {
                      sock.state = 'closing';
                      sock.conn.close();
                      renderSockets();
                    },
                  },
                  'Disconnect',
                ),
              ),
            );
          }),
        ),
      ];
    });
    // Focus was on a socket that is gone now: hand it to the connect button.
    if (hadFocus && !socketsBox.contains(document.activeElement)) (connectButton.disabled ? userInput : connectButton).focus();
  }

  /**
   * `read`'s answer from the response, null for an HTTP error, DOWN when the server is
   * not answering: no answer at all, or a 5xx (a proxy in front of a server that is gone
   * says 502 or 503).
   * @template T
   * @param {string} url
   * @param {(res: Response) => Promise<T>} read
   * @returns {Promise<T | null | typeof DOWN>}
   */
  async function fetchFrom(url, read) {
    try {
      const res = await fetch(url, { cache: 'no-store' });
      if (res.status >= 500) return DOWN;
      return res.ok ? await read(res) : null;
    } catch {
      return DOWN;
    }
  }
  /** @param {string} url @returns {Promise<any>} */
  const fetchJson = (url) => fetchFrom(url, (res) => res.json());
  const fetchMetrics = () => fetchFrom('/metrics', async (res) => parseMetrics(await res.text()));

  /** The next poll: in a second, or later while the server does not answer. */
  function schedule() {
    if (timer !== null) clearTimeout(timer);
    timer = running ? setTimeout(() => void poll(true), failures === 0 ? POLL_MS : retryMs()) : null;
  }
  const retryMs = () => Math.min(RETRY_MAX_MS, POLL_MS * 2 ** failures);

  /**
   * A poll got no answer: stop asking every second, say so, and keep the last numbers
   * (labelled with their time) rather than drawing zeros the server never said.
   */
  function serverDown() {
    failures++;
    const since = lastAnswerAt ? ` since ${new Date(lastAnswerAt).toLocaleTimeString()}` : '';
    if (failures === 1) note('client', 'unreachable', `the demo server at ${location.host} stopped answering`);
    connectButton.disabled = true;
    statusLine.textContent = `The demo server at ${location.host} is not answering${since}. Retrying in ${Math.round(retryMs() / 1000)} s; the numbers below are its last answer.`;
    updated.textContent = lastAnswerAt ? `no answer${since}` : '';
  }

  function serverBack() {
    failures = 0;
    note('client', 'reachable', `the demo server at ${location.host} answers again`);
    connectButton.disabled = false;
    statusLine.textContent = connectedText();
  }
  const connectedText = () =>
    `Connected to the demo server at ${location.host}${socketIo ? ' (Socket.IO)' : ''}. Open sockets, send messages, and watch the server's own numbers.`;

  /**
   * Asks the server for the watched user's view and the metrics. Called by the timer and
   * on the page's own events (a socket opened or closed, the user switched); while the
   * server is not answering, only the timer asks (the backoff it announced holds).
   * @param {boolean} [fromTimer]
   */
  async function poll(fromTimer = false) {
    if (!running || available !== true || document.hidden) {
      schedule();
      return;
    }
    if (failures > 0 && !fromTimer) return;
    if (polling) {
      // Asked while one is on its way (the watched user changed, a socket opened): one
      // more right after it, so the answer shown is never older than the question.
      pollAgain = true;
      return;
    }
    polling = true;
    try {
      const userId = watchedUser();
      const generation = watchGeneration;
      const [view, m] = await Promise.all([userId ? fetchJson(`/api/users/${encodeURIComponent(userId)}`) : null, fetchMetrics()]);
      if (view === DOWN || m === DOWN) {
        serverDown();
        return;
      }
      lastAnswerAt = Date.now();
      if (failures > 0) serverBack();
      // The watched user changed meanwhile: this answer is about someone else.
      if (generation !== watchGeneration || userId !== watchedUser()) return;
      userView = view;
      if (m) metrics = m;
      samples.push({
        at: Date.now(),
        active: view ? view.active : 0,
        sockets: [...sockets.values()].filter((s) => s.state === 'open' && s.userId === userId).length,
        refused: metrics.get('socket_lease_upgrades_total{status="429"}') ?? 0,
      });
      if (samples.length > 300) samples.splice(0, samples.length - 300);
      renderServer();
      updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
    } finally {
      polling = false;
      // Asked again meanwhile, and the server answered: right away; else on the timer.
      const again = pollAgain && failures === 0;
      pollAgain = false;
      if (again) void poll();
      else schedule();
    }
  }

  function renderServer() {
    const userId = watchedUser();
    const mine = new Map([...sockets.values()].filter((s) => s.leaseId).map((s) => [s.leaseId, s.n]));
    // The page learns a socket's lease id from its first echo.
    const unlabelled = [...sockets.values()].filter((s) => s.state === 'open' && !s.leaseId && s.userId === userId).length;
    serverBox.replaceChildren(
      userView
        ? h(
            'div',
            {},
            gauge({
              label: `${userId} on the server: leases held`,
              value: userView.active,
              max: userView.limit,
              level: gaugeLevel(userView.active, userView.limit, SERVER_WARN_RATIO),
              caption: `${userView.socketsOpen} socket${userView.socketsOpen === 1 ? '' : 's'} open on the server for ${userId}`,
              testid: 'server-gauge',
            }),
            userView.leases.length === 0
              ? h('p', { class: 'muted' }, `The server holds no lease for ${userId}.`)
              : h(
                  'ul',
                  { class: 'conns', 'aria-label': `leases the server holds for ${userId}` },
                  ...userView.leases.map((/** @type {any} */ l) =>
                    h(
                      'li',
                      { class: 'conn', dataset: { lease: l.id } },
                      h(
                        'div',
                        { class: 'conn-head' },
                        mine.has(l.id)
                          ? h('strong', {}, `socket #${mine.get(l.id)}`)
                          : h(
                              'span',
                              { class: 'muted' },
                              unlabelled > 0 ? 'another socket, or one of this page\u2019s before its first echo' : 'another socket',
                            ),
                        h('span', { class: 'expires' }, `expires in ${clock(Math.max(0, l.expiresAt - Date.now()))} unless a pong renews it`),
                      ),
                      leaseIds(l),
                    ),
                  ),
                ),
          )
        : h('p', { class: 'muted' }, userId ? 'No answer from /api/users yet.' : 'Type a user id to watch.'),
    );
    metricsBox.replaceChildren(
      ...SHOWN_METRICS.map(([key, label]) =>
        h('div', { class: 'metric', dataset: { metric: key } }, h('dt', {}, label), h('dd', {}, metrics.has(key) ? String(metrics.get(key)) : '–')),
      ),
    );
    timeline.update(samples, userView ? userView.limit : null);
  }

  async function checkServer() {
    const health = await fetchJson('/healthz');
    available = health !== null && health !== DOWN;
    /** @type {string | null} */
    let problem = null;
    // No `transport` (an older demo server): WebSocket, the only one it could be.
    if (available && health.transport === 'socket.io' && !socketIo) {
      try {
        socketIo = /** @type {{ io: typeof import('socket.io-client').io }} */ (await import(SOCKET_IO_CLIENT)).io;
      } catch (err) {
        available = false;
        problem = `The demo server speaks Socket.IO, but its browser client did not load from ${SOCKET_IO_CLIENT} (${String(err)}); is serveClient off?`;
      }
    }
    connectButton.disabled = !available;
    statusLine.textContent = available
      ? connectedText()
      : (problem ?? 'Live mode needs the demo server: run `npm start` and open the URL it prints. The simulation works without it.');
    return available;
  }

  $('live-form').addEventListener('submit', (e) => {
    e.preventDefault();
    connect();
  });
  userInput.addEventListener('change', () => {
    watchGeneration++;
    userView = null;
    samples.length = 0;
    // A refusal shown for the previous user is not this one's.
    clearRefusal();
    renderServer();
    void poll();
  });

  return {
    /**
     * Called when the live tab is shown: check the server (again, if it was not there
     * before), then poll once a second.
     */
    async start() {
      const shown = ++shownCount;
      if (available !== true && !(await checkServer())) return;
      // Hidden again (or shown anew) while /healthz was on its way.
      if (shown !== shownCount) return;
      running = true;
      void poll();
    },
    /** Called when the tab is hidden: stop polling (sockets stay open). */
    stop() {
      shownCount++;
      running = false;
      schedule();
    },
  };
}
