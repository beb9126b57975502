import tls from 'node:tls';
import { expect } from 'chai';
import { newDevice } from '../support/device-client.js';
import { useFleetgateBehindNginx } from '../support/nginx-suite.js';

interface Answer {
  status: number;
  head: string;
  body: string;
}

/** Raw bytes over mTLS to nginx; the answer is whatever arrives until nginx closes. */
function rawThroughNginx(port: number, ca: string, bytes: string): Promise<Answer> {
  const device = newDevice();
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca,
      cert: device.certPem,
      key: device.keyPem,
    });
    let text = '';
    socket.once('secureConnect', () => socket.write(bytes));
    socket.on('data', (chunk) => (text += String(chunk)));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy());
    socket.once('close', () => {
      const split = text.indexOf('\r\n\r\n');
      resolve({
        status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0),
        head: split >= 0 ? text.slice(0, split) : text,
        body: split >= 0 ? text.slice(split + 4) : '',
      });
    });
  });
}

describe('behind nginx: requests nginx refuses itself get JSON, never a 5xx', function () {
  this.timeout(120_000);
  const front = useFleetgateBehindNginx();

  const cases: Array<[string, string]> = [
    ['a malformed URI', 'GET /%zz HTTP/1.1\r\nHost: localhost\r\n\r\n'],
    [
      'a malformed URI on the endpoint',
      'GET /device_endpoint%zz HTTP/1.1\r\nHost: localhost\r\n\r\n',
    ],
    ['a bad request line', 'GARBAGE\r\n\r\n'],
    ['a request line with a bad version', 'GET / HTTP/9.9\r\nHost: localhost\r\n\r\n'],
    ['a bad method', 'G@T / HTTP/1.1\r\nHost: localhost\r\n\r\n'],
    [
      'Transfer-Encoding: chunked, identity',
      'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
        'Transfer-Encoding: chunked, identity\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
    ],
    [
      'Transfer-Encoding: gzip',
      'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n',
    ],
    ['no Host header', 'GET /device_endpoint HTTP/1.1\r\n\r\n'],
    [
      'Content-Length and Transfer-Encoding together',
      'POST /device_endpoint HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    ],
    [
      'an unknown method',
      'BREW /device_endpoint HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    ],
  ];
  for (const [what, bytes] of cases) {
    it(`answers ${what} with a JSON 4xx`, async () => {
      const answer = await rawThroughNginx(front.nginx.port, front.nginx.caPem, bytes);
      const label = `${answer.head}\n\n${answer.body}`;
      expect(answer.status, label).to.be.within(400, 499);
      expect(answer.head, label).to.match(/content-type: application\/json/i);
      const json = JSON.parse(answer.body) as { code?: unknown; error?: unknown };
      expect(json.code, label).to.be.a('string');
      expect(json.error, label).to.be.a('string');
    });
  }
});
