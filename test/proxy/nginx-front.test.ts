import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { curl } from '../support/curl.js';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';
import { escapedPem } from '../support/nginx-front.js';
import { useFleetgateBehindNginx } from '../support/nginx-suite.js';

describe('behind nginx: certificates forwarded by the proxy', function () {
  this.timeout(120_000);
  const front = useFleetgateBehindNginx();
  let psk: string;

  before(async () => {
    expect((await front.app.cli(['identity', 'create', 'acme'])).code).to.equal(0);
    psk = (await front.app.cli(['psk', 'issue', 'acme', '--max-devices', '100'])).stdout.trim();
  });

  const files = (device: TestDevice) => {
    const dir = fs.mkdtempSync(path.join(front.db.workDir, 'device-'));
    fs.writeFileSync(path.join(dir, 'device.crt'), device.certPem);
    fs.writeFileSync(path.join(dir, 'device.key'), device.keyPem);
    return ['--cert', path.join(dir, 'device.crt'), '--key', path.join(dir, 'device.key')];
  };
  const endpoint = () => `${front.nginx.baseUrl}/device_endpoint`;
  const viaCurl = (args: string[]) => curl(['--cacert', front.nginx.caPath, ...args, endpoint()]);
  const bindArgs = () => [
    '-H',
    'content-type: application/json',
    '-d',
    JSON.stringify({ PSK: psk }),
  ];
  const csvFile = (content: string) => {
    const file = path.join(front.db.workDir, `series-${Math.random().toString(16).slice(2)}.csv`);
    fs.writeFileSync(file, content);
    return file;
  };

  it('binds and uploads with curl --cert through nginx, and the points are stored', async () => {
    const device = newDevice();
    const bound = await viaCurl([...files(device), ...bindArgs()]);
    expect(bound.status, bound.text).to.equal(200);
    expect(bound.json).to.include({
      status: 'bound',
      identity: 'acme',
      fingerprint: device.fingerprint,
    });

    const file = csvFile('1700000000000,1.5\n1700000001000,2.5\n');
    const upload = await viaCurl([...files(device), '-F', `temperature=@${file}`]);
    expect(upload.status, upload.text).to.equal(200);
    expect(upload.json).to.include({ stored: 2, duplicates: 0 });
    const exported = await front.app.cli(['export', device.fingerprint, 'temperature']);
    expect(exported.stdout).to.equal('1700000000000,1.5\n1700000001000,2.5\n');
  });

  it('answers 401 through nginx when the device presents no certificate', async () => {
    const answer = await viaCurl(['-F', `temperature=@${csvFile('1700000000000,1\n')}`]);
    expect(answer.status).to.equal(401);
    expect(answer.json).to.deep.equal({
      error: 'a client certificate is required',
      code: 'no_client_certificate',
    });
  });

  it('replaces a forged certificate header: by nothing without a certificate, by the real one with', async () => {
    const victim = newDevice();
    expect((await viaCurl([...files(victim), ...bindArgs()])).status).to.equal(200);
    const forged = escapedPem(victim.certPem);
    const file = csvFile('1700000000000,1\n');
    const spellings = [
      ['-H', `X-SSL-Client-Cert: ${forged}`],
      ['-H', `x-ssl-client-cert: ${forged}`],
      ['-H', `X-SSL-CLIENT-CERT: ${forged}`],
      ['-H', `X_SSL_Client_Cert: ${forged}`],
      ['-H', `X-SSL-Client-Cert: ${forged}`, '-H', `X-SSL-Client-Cert: ${forged}`],
    ];
    for (const headers of spellings) {
      const anonymous = await viaCurl([...headers, '-F', `temperature=@${file}`]);
      expect(anonymous.status, headers[1]).to.equal(401);
      expect(anonymous.json.code).to.equal('no_client_certificate');

      const attacker = newDevice();
      const upload = await viaCurl([...files(attacker), ...headers, '-F', `temperature=@${file}`]);
      expect(upload.status, headers[1]).to.equal(403);
      expect(upload.json.code).to.equal('certificate_not_bound');
      const bind = await viaCurl([...files(attacker), ...headers, ...bindArgs()]);
      expect(bind.json.fingerprint, headers[1]).to.equal(attacker.fingerprint);
    }
    const stolen = await front.app.cli(['export', victim.fingerprint, 'temperature']);
    expect(stolen.code).to.not.equal(0);
  });

  it('tells devices apart on shared upstream keep-alive connections', async () => {
    const devices = [newDevice(), newDevice(), newDevice()];
    const clients = devices.map((device) => new DeviceClient(front.nginx, device));
    try {
      for (let round = 0; round < 4; round++) {
        for (const [i, client] of clients.entries()) {
          const answer = await client.bind(psk);
          expect(answer.status).to.equal(200);
          expect(answer.json.fingerprint).to.equal(devices[i]!.fingerprint);
          expect(answer.json.status).to.equal(round === 0 ? 'bound' : 'already_bound');
        }
      }
    } finally {
      await Promise.all(clients.map((client) => client.close()));
    }
  });
});
