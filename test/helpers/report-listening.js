// Loaded with --import into server processes the tests start (test/helpers/process.ts), never by the
// app. It reports, as JSON lines on file descriptor 3, which the test reads:
//
// - each TCP address the process listens on: `{"address":"127.0.0.1","port":41247}`. That is certain
//   where polling a port is not: the report comes from this very process, whatever its LOG_LEVEL, and
//   PORT=0 lets the kernel pick a free port. It is sent from the next check phase of the event loop
//   after the listener is bound, so after what app/server.ts does synchronously once 'listening' has
//   fired (installing its signal handlers): a test that sends SIGTERM on this report gets the shutdown.
// - whether SIGTERM and SIGINT are handled at the moment the server writes its "listening on" line
//   to standard output: `{"announced":true,"handlers":{"SIGTERM":1,"SIGINT":1}}` (test/server.test.ts).
//
// And it ends the process, removing its temp working folder, if the test process that started it
// dies first (ava kills a worker that overruns its timeout, and then the worker's own clean-up never
// runs): the server is re-parented, and nothing would ever stop it.
import { subscribe } from 'node:diagnostics_channel';
import fs from 'node:fs';
import { basename } from 'node:path';

const parent = process.ppid;
setInterval(() => {
  if (process.ppid === parent) return;
  if (basename(process.cwd()).startsWith('koa-session-test-'))
    fs.rmSync(process.cwd(), { recursive: true, force: true });
  process.kill(process.pid, 'SIGKILL');
}, 500).unref();

const REPORT_FD = 3;

function report(value) {
  try {
    fs.writeSync(REPORT_FD, `${JSON.stringify(value)}\n`);
  } catch {
    // run without the report pipe (by hand): nothing to tell
  }
}

subscribe('tracing:net.server.listen:asyncEnd', ({ server }) => {
  const address = server.address();
  if (address === null || typeof address !== 'object') return; // a Unix socket or a pipe: not ours to report
  setImmediate(() => report({ address: address.address, port: address.port }));
});

// pino's destination (sonic-boom) writes through fs.write / fs.writeSync on file descriptor 1.
let announced = false;
for (const name of ['write', 'writeSync']) {
  const original = fs[name];
  fs[name] = function write(fd, data, ...rest) {
    if (!announced && fd === 1 && String(data).includes('"msg":"listening on')) {
      announced = true;
      report({
        announced: true,
        handlers: { SIGTERM: process.listenerCount('SIGTERM'), SIGINT: process.listenerCount('SIGINT') },
      });
    }
    return original.call(this, fd, data, ...rest);
  };
}
