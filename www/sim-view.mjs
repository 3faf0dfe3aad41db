// The simulation tab: controls, per-user cards (two gauges, the connections and their
// ids), the timeline and the event log, all re-rendered from the Simulation after each
// action. Buttons carry `data-focus` keys so keyboard focus survives a re-render.
import { SimError, Simulation, heartbeatMsFor } from './sim.mjs';
import { Timeline } from './chart.mjs';
import { clock, gauge, h, leaseIds, renderLog, rerender } from './ui.mjs';

/**
 * @param {object} deps
 * @param {new (options: any) => any} deps.LeaseRegistry
 * @param {(a: string, b: string) => boolean} deps.sameLease
 */
export function mountSimulation({ LeaseRegistry, sameLease }) {
  const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
  const usersBox = $('sim-users');
  const clockOut = $('sim-clock');
  const logList = $('sim-log');
  const limitInput = /** @type {HTMLInputElement} */ ($('sim-limit'));
  const ttlInput = /** @type {HTMLInputElement} */ ($('sim-ttl'));
  const policyInput = /** @type {HTMLSelectElement} */ ($('sim-policy'));
  const warnInput = /** @type {HTMLSelectElement} */ ($('sim-warn'));
  const heartbeatsInput = /** @type {HTMLInputElement} */ ($('sim-heartbeats'));
  const settingsNote = $('sim-settings-note');
  const status = $('sim-status');

  const timeline = new Timeline(/** @type {HTMLCanvasElement} */ ($('sim-chart')), {
    series: [
      { key: 'leaky', label: 'leaky host, managers held', color: 'var(--leaky)', width: 5 },
      { key: 'guarded', label: 'guarded host, leases held', color: 'var(--guarded)' },
    ],
    markers: [
      { key: 'leakyRejected', label: 'leaky host refusals', color: 'var(--leaky)' },
      { key: 'guardedRejected', label: 'guarded host refusals', color: 'var(--guarded)' },
    ],
    timeLabel: (s) => `t=${clock(s.at - sim.startMs)}`,
    description: 'Timeline of the simulation',
  });

  /** @type {Simulation} */
  let sim = fresh(readSettings());

  /**
   * A new simulation with these options (a reset keeps the ones in force: a value typed
   * but never applied, or one the form refused, is not taken silently).
   * @param {ReturnType<typeof readSettings>} options
   */
  function fresh(options) {
    const s = new Simulation({
      LeaseRegistry,
      // Start at the real time so the ids' embedded timestamps look like today's.
      startMs: Math.floor(Date.now() / 1000) * 1000,
      options,
    });
    s.heartbeats = heartbeatsInput.checked;
    s.addUser('alice');
    return s;
  }

  function readSettings() {
    const limit = Number(limitInput.value);
    const ttlS = Number(ttlInput.value);
    return {
      limit: Number.isInteger(limit) && limit >= 1 && limit <= 50 ? limit : 5,
      ttlMs: (Number.isFinite(ttlS) && ttlS >= 5 && ttlS <= 3600 ? Math.round(ttlS) : 60) * 1000,
      policy: /** @type {import('./sim.mjs').Policy} */ (policyInput.value),
      warnRatio: Number(warnInput.value),
    };
  }

  /**
   * Runs an action, then re-renders. A SimError (a request the simulation cannot carry
   * out) is only shown; anything else is a bug and also goes to the console, where the
   * page tests catch it.
   */
  function act(/** @type {() => void} */ action, /** @type {string} */ said, /** @type {string} */ fallbackFocus = '') {
    try {
      action();
      status.textContent = said;
    } catch (err) {
      status.textContent = `Could not do that: ${/** @type {Error} */ (err).message}`;
      if (!(err instanceof SimError)) console.error(err);
    }
    render(fallbackFocus);
  }

  function render(fallbackFocus = '') {
    clockOut.textContent = clock(sim.elapsedMs);
    rerender(usersBox, () => sim.users.map(userCard), fallbackFocus);
    timeline.update(sim.samples, sim.users.length === 1 ? sim.options.limit : null);
    renderLog(logList, sim.log, (at) => clock(at - sim.startMs));
  }

  /** @type {Map<string, string>} */
  const titleIds = new Map();

  /** @param {string} userId */
  function userCard(userId) {
    const view = sim.view(userId);
    const conns = sim.connectionsOf(userId);
    // One id per user, whatever its characters ("a b" and "a_b" must not share one).
    let titleId = titleIds.get(userId);
    if (titleId === undefined) {
      titleId = `user-${titleIds.size}`;
      titleIds.set(userId, titleId);
    }
    return h(
      'article',
      { class: 'user', dataset: { user: userId }, 'aria-labelledby': titleId },
      h(
        'div',
        { class: 'user-head' },
        h('h3', { id: titleId }, userId),
        h(
          'button',
          {
            type: 'button',
            class: 'primary',
            dataset: { focus: `open:${userId}` },
            'aria-label': `Open a connection for ${userId}`,
            onclick: () => act(() => sim.open(userId), `${userId} opened a connection`),
          },
          'Open connection',
        ),
      ),
      h(
        'div',
        { class: 'hosts' },
        hostBox(
          'leaky',
          'Leaky host',
          'a counter, as in the incident',
          gauge({
            label: `${userId} on the leaky host: managers held`,
            value: view.leaky.held,
            max: view.leaky.limit,
            level: view.leaky.level,
            caption: view.leaky.ghosts > 0 ? `${view.leaky.ghosts} for sockets that are gone` : 'nothing leaked yet',
            testid: 'leaky-gauge',
          }),
          view.leaky.locked ? h('p', { class: 'locked', dataset: { testid: 'leaky-locked' } }, 'Locked out, and nothing will ever free it') : null,
          view.refusals.leaky,
          view.answers.leaky,
        ),
        hostBox(
          'guarded',
          'Guarded host',
          'socket-lease',
          gauge({
            label: `${userId} on the guarded host: leases held`,
            value: view.guarded.active,
            max: view.guarded.limit,
            level: view.guarded.level,
            caption:
              view.guarded.level === 'full'
                ? 'at the limit: new connections get a 429'
                : view.guarded.level === 'warn'
                  ? 'near the limit: alert fired'
                  : 'room to spare',
            testid: 'guarded-gauge',
          }),
          null,
          view.refusals.guarded,
          view.answers.guarded,
        ),
      ),
      conns.length === 0
        ? h('p', { class: 'muted' }, 'No connections open.')
        : h('ul', { class: 'conns', 'aria-label': `${userId}'s connections` }, ...conns.map(connRow)),
    );
  }

  /**
   * @param {'leaky' | 'guarded'} kind
   * @param {string} title
   * @param {string} subtitle
   * @param {HTMLElement} meter
   * @param {HTMLElement | null} extra
   * @param {number} refusals
   * @param {import('./sim.mjs').Answer | null} answer
   */
  function hostBox(kind, title, subtitle, meter, extra, refusals, answer) {
    return h(
      'section',
      { class: `host host-${kind}`, 'aria-label': `${title} (${subtitle})` },
      h('h4', {}, title, h('small', {}, subtitle)),
      meter,
      extra,
      h('p', { class: 'refusals', dataset: { testid: `${kind}-refusals`, count: String(refusals) } }, refusals === 0 ? 'no refusals' : `refused ${refusals}×`),
      h(
        'p',
        {
          class: `answer ${answer ? (answer.ok ? 'answer-ok' : 'answer-refused') : ''}`,
          dataset: { testid: `${kind}-answer`, ok: answer ? String(answer.ok) : '' },
        },
        answer ? answer.text : 'No answer yet.',
      ),
    );
  }

  /** @param {import('./sim.mjs').Connection} conn */
  function connRow(conn) {
    const who = `${conn.userId} #${conn.n}`;
    const lease = conn.lease;
    const expiresIn = lease ? Math.max(0, lease.expiresAt - sim.now) : 0;
    /** @type {(label: string, name: string, run: () => void, said: string, fallback?: string) => HTMLElement} */
    const button = (label, name, run, said, fallback) =>
      h(
        'button',
        { type: 'button', dataset: { focus: `${name}:${conn.key}` }, 'aria-label': `${label} on ${who}`, onclick: () => act(run, said, fallback) },
        label,
      );
    return h(
      'li',
      { class: `conn conn-${conn.state}`, dataset: { key: conn.key, state: conn.state } },
      h(
        'div',
        { class: 'conn-head' },
        h('strong', {}, `#${conn.n}`),
        h('span', { class: `state state-${conn.state}` }, conn.state === 'open' ? 'open' : 'killed: no close reached the hosts'),
        lease
          ? h('span', { class: 'expires' }, `lease expires in ${clock(expiresIn)}${conn.state === 'killed' ? ' (no heartbeats now)' : ''}`)
          : h('span', { class: 'expires' }, 'guarded host refused it'),
      ),
      lease
        ? h(
            'div',
            { class: 'conn-ids' },
            leaseIds(lease),
            h('span', { class: 'same', title: 'sameLease(conn, thread)' }, sameLease(lease.id, lease.threadId) ? '✓ one lease, three names' : ''),
          )
        : null,
      conn.leakyIds
        ? h(
            'p',
            { class: 'leaky-ids', title: "The incident's cleanup parsed one of these to find the other, and missed" },
            'leaky host ids: ',
            h('code', {}, conn.leakyIds.runId),
            ' vs ',
            h('code', {}, conn.leakyIds.threadId),
          )
        : null,
      conn.state === 'open'
        ? h(
            'div',
            { class: 'conn-actions' },
            button('Send message', 'send', () => sim.send(conn.key), `${who} sent a message`),
            lease ? button('Heartbeat', 'beat', () => sim.heartbeat(conn.key), `${who} sent a heartbeat`) : null,
            button('Close', 'close', () => sim.close(conn.key), `${who} closed`, `open:${conn.userId}`),
            button('Kill', 'kill', () => sim.kill(conn.key), `${who} was lost without a close`, `open:${conn.userId}`),
          )
        : null,
    );
  }

  // Controls outside the cards.
  $('sim-settings').addEventListener('submit', (e) => {
    e.preventDefault();
    const next = readSettings();
    act(() => sim.setOptions(next), `Applied: limit ${next.limit}, TTL ${next.ttlMs / 1000} s, ${next.policy}`);
    settingsNote.textContent = `Heartbeat every ${heartbeatMsFor(next.ttlMs) / 1000} s while the clock runs.`;
  });
  for (const button of Array.from(document.querySelectorAll('[data-advance]'))) {
    button.addEventListener('click', () => {
      const raw = /** @type {HTMLElement} */ (button).dataset.advance;
      const ms = raw === 'ttl' ? sim.options.ttlMs : Number(raw);
      act(() => sim.advance(ms), `Clock advanced by ${clock(ms)}`);
    });
  }
  heartbeatsInput.addEventListener('change', () => {
    sim.heartbeats = heartbeatsInput.checked;
    status.textContent = heartbeatsInput.checked ? 'Open connections answer heartbeats' : 'Heartbeats off: every lease will expire after its TTL';
  });
  $('sim-add-user').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($('sim-user-name'));
    const name = input.value.trim();
    if (name === '') {
      status.textContent = 'Type a name first';
      return;
    }
    act(() => {
      if (!sim.addUser(name)) throw new SimError(`${name} is already there`);
    }, `${name} added`);
    input.value = '';
  });
  $('sim-reset').addEventListener('click', () => {
    const options = { ...sim.options };
    sim.registry.free();
    sim = fresh(options);
    render();
    status.textContent = 'Simulation reset';
  });
  settingsNote.textContent = `Heartbeat every ${heartbeatMsFor(readSettings().ttlMs) / 1000} s while the clock runs.`;
  render();
  return {
    get sim() {
      return sim;
    },
  };
}
