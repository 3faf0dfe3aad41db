// The page tests' error watcher itself: an allowed console error must really occur, and
// anything else fails the test. Driven by a stand-in page that emits Playwright's events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { watchErrors } from './harness.mjs';

/** A console message as Playwright reports it. @param {string} text */
const consoleError = (text) => ({ type: () => 'error', text: () => text });

test('watchErrors: an allowed console error that never occurred fails assertClean; one that did passes', () => {
  const page = new EventEmitter();
  const errors = watchErrors(/** @type {any} */ (page));
  errors.allow(/failed: .*429/);
  assert.throws(() => errors.assertClean(), /every allowed console error occurred/);
  page.emit('console', consoleError("WebSocket connection to 'ws://x/ws' failed: Error during WebSocket handshake: Unexpected response code: 429"));
  errors.assertClean();
});

test('watchErrors: any other console error, page error, failed request or HTTP error fails assertClean', () => {
  const page = new EventEmitter();
  const errors = watchErrors(/** @type {any} */ (page));
  errors.allow(/429/);
  page.emit('console', consoleError('something 429'));
  page.emit('console', { type: () => 'warning', text: () => 'not an error' });
  errors.assertClean();
  page.emit('console', consoleError('boom'));
  page.emit('pageerror', new Error('uncaught'));
  page.emit('requestfailed', { url: () => 'http://x/a', failure: () => ({ errorText: 'net::ERR_FAILED' }) });
  page.emit('response', { status: () => 404, url: () => 'http://x/b' });
  assert.deepEqual(errors.problems, ['console error: boom', 'page error: uncaught', 'request failed: http://x/a net::ERR_FAILED', 'HTTP 404 for http://x/b']);
  assert.throws(() => errors.assertClean(), /no console error/);
});
