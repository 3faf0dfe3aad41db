// `npm start`: the demo host on HOST:PORT. See `--help` (config.mjs) for the settings.
import { createDemoServer } from './demo-server.mjs';
import { ConfigError, USAGE, parseConfig, startupLines } from '../demo/config.mjs';

let config;
try {
  config = parseConfig(process.env, process.argv.slice(2));
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  console.error(`socket-lease demo: invalid configuration: ${err.code}: ${err.message}\n\n${USAGE}`);
  process.exit(2);
}
if (config === 'help') {
  console.log(USAGE);
  process.exit(0);
}

/** @type {import('./demo-server.mjs').DemoServer} */
let demo;
try {
  demo = await createDemoServer(config);
} catch (err) {
  // Bad option values the core rejects (LeaseError INVALID_OPTION) or a busy port.
  const e = /** @type {NodeJS.ErrnoException} */ (err);
  console.error(`socket-lease demo: cannot start: ${e.code ? `${e.code}: ` : ''}${e.message}`);
  process.exit(1);
}

for (const line of startupLines(config, { url: demo.url })) console.log(line);

/** @param {NodeJS.Signals} signal */
async function shutdown(signal) {
  console.log(`socket-lease demo: ${signal}: closing every socket (1001) and releasing every lease`);
  // A second signal while shutting down means "now".
  process.once('SIGINT', () => process.exit(130));
  process.once('SIGTERM', () => process.exit(143));
  try {
    const stats = await demo.close();
    console.log(`socket-lease demo: stopped; final stats ${JSON.stringify(stats)}`);
    process.exit(0);
  } catch (err) {
    // A signal handler's rejection would be an unhandled rejection with a stack trace;
    // say what failed and exit non-zero instead.
    console.error(`socket-lease demo: shutdown failed: ${String(err)}`);
    process.exit(1);
  }
}
process.once('SIGINT', shutdown);
process.once('SIGTERM', shutdown);
