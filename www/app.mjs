// Entry point of the demo page: loads the package's browser build (the same WebAssembly
// core the hosts run), then mounts the simulation and the live tab.
//
// The import is relative so the page works both from the demo server (which mounts /js/
// and /pkg/ beside www/) and from any static server rooted at the repository (/www/).
import init, { LeaseRegistry, sameLease } from '../js/browser.mjs';
import { mountSimulation } from './sim-view.mjs';
import { mountLive } from './live.mjs';

const loadError = /** @type {HTMLElement} */ (document.getElementById('load-error'));

try {
  await init();
} catch (err) {
  loadError.textContent = `Could not load the socket-lease WebAssembly module (${/** @type {Error} */ (err).message}). Build it with \`npm run build\` and serve the page with \`npm start\`.`;
  loadError.hidden = false;
  throw err;
}

mountSimulation({ LeaseRegistry, sameLease });
const live = mountLive();

// Tabs per the WAI-ARIA tabs pattern: arrow keys move between tabs, Tab enters the panel.
const tabs = /** @type {HTMLButtonElement[]} */ (Array.from(document.querySelectorAll('[role="tab"]')));

/** @param {HTMLButtonElement} tab @param {boolean} focus */
function select(tab, focus) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute('aria-selected', String(on));
    t.tabIndex = on ? 0 : -1;
    /** @type {HTMLElement} */ (document.getElementById(/** @type {string} */ (t.getAttribute('aria-controls')))).hidden = !on;
  }
  if (focus) tab.focus();
  const isLive = tab.id === 'tab-live';
  history.replaceState(null, '', isLive ? '#live' : '#simulation');
  if (isLive) void live.start();
  else live.stop();
}

for (const tab of tabs) {
  tab.addEventListener('click', () => select(tab, false));
  tab.addEventListener('keydown', (e) => {
    const i = tabs.indexOf(tab);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (next === undefined) return;
    e.preventDefault();
    select(tabs[(next + tabs.length) % tabs.length], true);
  });
}
document.addEventListener('visibilitychange', () => {
  const liveTab = /** @type {HTMLButtonElement} */ (document.getElementById('tab-live'));
  if (liveTab.getAttribute('aria-selected') !== 'true') return;
  if (document.hidden) live.stop();
  else void live.start();
});

select(/** @type {HTMLButtonElement} */ (document.getElementById(location.hash === '#live' ? 'tab-live' : 'tab-sim')), false);
document.documentElement.dataset.ready = 'true';
