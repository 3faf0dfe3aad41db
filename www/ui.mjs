// Small DOM helpers shared by the simulation and the live view. No framework: the page
// re-renders a few dozen elements per click, which plain DOM calls do in well under a frame.

/**
 * Builds an element. `attrs` keys starting with `on` add listeners; `class`, `text`,
 * `dataset` and boolean attributes are handled; `null`/`false` children are skipped.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...(Node | string | number | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, '');
    else el.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return el;
}

/**
 * A TypeID with its shared suffix highlighted: `conn_` plain, the suffix marked, so three
 * ids of one lease visibly carry the same 26 characters.
 * @param {string} id
 */
export function idView(id) {
  const cut = id.lastIndexOf('_');
  const kind = cut < 0 ? '' : id.slice(0, cut + 1);
  const suffix = id.slice(cut + 1);
  return h('code', { class: 'id', title: id }, h('span', { class: 'id-kind' }, kind), h('mark', { class: 'id-suffix' }, suffix));
}

/** The three ids of a lease, one per line. @param {{ id: string, runId: string, threadId: string }} lease */
export function leaseIds(lease) {
  return h('div', { class: 'ids', 'aria-label': 'ids of this lease (one shared suffix)' }, idView(lease.id), idView(lease.runId), idView(lease.threadId));
}

/**
 * A gauge: `value / max` with a bar coloured by level (ok, warn at the warn ratio, full).
 * @param {object} g
 * @param {string} g.label       accessible name
 * @param {number} g.value
 * @param {number} g.max
 * @param {'ok' | 'warn' | 'full'} g.level
 * @param {string} [g.caption]   visible text under the numbers
 * @param {string} [g.testid]
 */
export function gauge({ label, value, max, level, caption, testid }) {
  const ratio = max > 0 ? Math.min(1, value / max) : 0;
  return h(
    'div',
    {
      class: `gauge gauge-${level}`,
      role: 'meter',
      'aria-label': label,
      'aria-valuemin': 0,
      'aria-valuemax': max,
      'aria-valuenow': value,
      'aria-valuetext': `${value} of ${max}${level === 'full' ? ', at the limit' : level === 'warn' ? ', near the limit' : ''}`,
      dataset: { level, ...(testid ? { testid } : {}) },
    },
    h('div', { class: 'gauge-numbers' }, h('span', { class: 'gauge-value' }, value), ' / ', h('span', { class: 'gauge-max' }, max)),
    h('div', { class: 'gauge-track', 'aria-hidden': 'true' }, h('div', { class: 'gauge-fill', style: `width:${(ratio * 100).toFixed(1)}%` })),
    caption ? h('div', { class: 'gauge-caption' }, caption) : null,
  );
}

/** `m:ss` (or `h:mm:ss`) of a duration in ms. @param {number} ms */
export function clock(ms) {
  const s = Math.floor(ms / 1000);
  const hours = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

/**
 * Re-renders `container` with `build()` and puts keyboard focus back on the element with
 * the same `data-focus` key, so a click that re-renders does not throw the focus away.
 * When that element is gone (a closed connection), focus goes to `fallback` (a key).
 * @param {HTMLElement} container
 * @param {() => Node[]} build
 * @param {string} [fallback]
 */
export function rerender(container, build, fallback) {
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  const key = active && container.contains(active) ? active.dataset.focus : undefined;
  // Text typed into inputs survives too (an echo re-renders while someone types).
  /** @type {Map<string, string>} */
  const typed = new Map();
  container.querySelectorAll('input[data-focus]').forEach((input) => {
    const el = /** @type {HTMLInputElement} */ (input);
    if (el.value !== '') typed.set(/** @type {string} */ (el.dataset.focus), el.value);
  });
  container.replaceChildren(...build());
  for (const [k, value] of typed) {
    const el = /** @type {HTMLInputElement | null} */ (container.querySelector(`input[data-focus="${CSS.escape(k)}"]`));
    if (el) el.value = value;
  }
  if (key) {
    const again = /** @type {HTMLElement | null} */ (
      container.querySelector(`[data-focus="${CSS.escape(key)}"]`) ?? (fallback ? container.querySelector(`[data-focus="${CSS.escape(fallback)}"]`) : null)
    );
    again?.focus();
  }
}

/**
 * Renders the newest log entries, newest first, into an `ol` with role=log.
 * @param {HTMLElement} list
 * @param {{ seq: number, at: number, host: string, type: string, text: string }[]} entries
 * @param {(at: number) => string} time
 * @param {number} [max]
 */
export function renderLog(list, entries, time, max = 200) {
  const newest = entries.slice(-max).reverse();
  list.replaceChildren(
    ...newest.map((e) =>
      h(
        'li',
        { class: `log-entry log-${e.type} host-${e.host}`, dataset: { type: e.type, host: e.host } },
        h('span', { class: 'log-time' }, time(e.at)),
        h('span', { class: `badge badge-${e.host}` }, e.host),
        h('span', { class: `badge type type-${e.type}` }, e.type),
        h('span', { class: 'log-text' }, e.text),
      ),
    ),
  );
}
