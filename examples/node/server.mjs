// `npm start`: the demo host on HOST:PORT. See `--help` (config.mjs) for the settings.
import { createDemoServer } from './demo-server.mjs';
import { configOrExit, startupLines } from '../demo/config.mjs';

const config = configOrExit(process.env, process.argv.slice(2), process.exit);

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
