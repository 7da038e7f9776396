/**
 * What a request sends never reaches the logs, also when the request is malformed: Node's HTTP parse
 * errors carry the raw bytes received (cookies, Authorization headers), and the app logs such errors.
 */
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { appForTest } from './helpers/app.ts';
import { Browser } from './helpers/browser.ts';

/** Writes raw bytes on a new connection and resolves with what came back once the server closed it. */
function sendRaw(url: string, bytes: string): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(bytes));
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(received));
  });
}

const MALFORMED_BODIES = {
  'a bad chunk size': 'zz\r\n',
  'a junk chunk extension': '5;\x01\r\nhello\r\n0\r\n\r\n',
  'garbage after a whole request': '0\r\n\r\nNOT HTTP AT ALL\r\n\r\n',
};

for (const [kind, body] of Object.entries(MALFORMED_BODIES)) {
  test(`a malformed request (${kind}): its cookie and Authorization header appear in no log line`, async (t) => {
    const app = await appForTest(t);
    const browser = new Browser(app.url);
    await browser.request('/write?value=secret-session');
    const cookieValue = browser.cookies.get('sid')!;
    const token = 'Bearer TOKEN-THAT-MUST-NOT-BE-LOGGED';
    const answer = await sendRaw(
      app.url,
      `POST /write HTTP/1.1\r\nHost: x\r\nCookie: sid=${cookieValue}\r\nAuthorization: ${token}\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n${body}`,
    );
    t.regex(answer, /^HTTP\/1\.1 (200|400)/, 'answered, then cut off');
    await sleep(100); // the error is logged when the response stream fails, after the socket closed
    const errors = app.logs.filter((line) => line.level === 'error');
    t.true(errors.length > 0, 'the failed request was logged as an error (this is the path under test)');
    const text = app.logText();
    t.false(text.includes('rawPacket'), 'no raw request bytes in any line');
    for (const secret of [cookieValue, cookieValue.split('.')[0], 'TOKEN-THAT-MUST-NOT-BE-LOGGED']) {
      t.false(text.includes(secret), `${secret.slice(0, 12)}… is in no log line`);
      // The raw bytes were logged as an array of byte values: look for those too.
      const asBytes = [...Buffer.from(secret)].join(',');
      t.false(text.replaceAll(' ', '').includes(asBytes), 'nor as byte values');
    }
  });
}
