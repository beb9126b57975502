import { expect } from 'chai';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { normaliseMac, parseMacFile } from '../../src/authorities/mac-address.js';
import { curl } from '../support/curl.js';
import { cliOk } from '../support/device-pki.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { certificateRequest, issueWithCaDir } from '../support/openssl-cli.js';

describe('MAC addresses', () => {
  it('normalises the three forms and reports bad lines with their numbers', () => {
    for (const form of ['44:8A:5B:9C:70:93', '448a5b9c7093', '44-8a-5b-9c-70-93']) {
      expect(normaliseMac(form)).to.equal('44:8a:5b:9c:70:93');
    }
    expect(normaliseMac('44:8a:5b:9c:70')).to.equal(null);
    expect(normaliseMac('44:8a-5b:9c:70:93')).to.equal(null);
    expect(parseMacFile('# batch 7\n448A5B9C7093\n\n44:8a:5b:9c:70:93\r\n')).to.deep.equal([
      '44:8a:5b:9c:70:93',
    ]);
    expect(() => parseMacFile('448a5b9c7093\nnope\n44:8a\n')).to.throw(/line 2: "nope".*line 3/);
  });
});

describe('fleetgate provision: from the factory line to the field', () => {
  const fx = useFixture();
  let work: string;
  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-provision-'));
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  const ok = (args: string[]) => cliOk(fx().server, args);
  const url = () => `https://localhost:${fx().server.port}/device_endpoint`;
  const fp = (pem: string) =>
    createHash('sha256').update(new X509Certificate(pem).raw).digest('hex');
  const manifest = (out: string) =>
    fs
      .readFileSync(path.join(out, 'manifest.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(','));
  /** An identity with a factory CA (`fleetgate ca create`), a MAC file, and its provision command. */
  async function factoryLine(prefix: string, macLines: string) {
    const identity = uniqueName(prefix);
    const caDir = path.join(work, `${identity}-ca`);
    const out = path.join(work, `${identity}-out`);
    await ok(['identity', 'create', identity]);
    await ok(['ca', 'create', identity, '--out', caDir]);
    const macs = path.join(work, `${identity}.txt`);
    fs.writeFileSync(macs, macLines);
    const args = ['provision', identity, '--ca-dir', caDir, '--macs', macs, '--out', out];
    return { identity, caDir, out, args };
  }

  it('provisions a file of MACs; a bundle uploads with curl; a rerun creates nothing twice', async () => {
    const { caDir, out, args } = await factoryLine(
      'factory',
      '44:8A:5B:9C:70:93\n448a5b9c7094\n44-8a-5b-9c-70-95\n',
    );
    expect(fs.statSync(path.join(caDir, 'ca.key')).mode & 0o777).to.equal(0o600);
    const serverCa = path.join(work, 'server-ca.pem');
    fs.writeFileSync(serverCa, fx().server.caPem);
    const first = await ok([...args, '--server-ca', serverCa]);
    expect(first).to.contain('provisioned 3, existing 0');
    const rows = manifest(out);
    expect(rows.map((r) => [r[0], r[3]])).to.deep.equal([
      ['44:8a:5b:9c:70:93', 'provisioned'],
      ['44:8a:5b:9c:70:94', 'provisioned'],
      ['44:8a:5b:9c:70:95', 'provisioned'],
    ]);
    const bundle = path.join(out, '448a5b9c7093');
    expect(fs.readdirSync(bundle).sort()).to.deep.equal([
      'ca.crt',
      'device.crt',
      'device.key',
      'server-ca.crt',
    ]);
    expect(fs.statSync(path.join(bundle, 'device.key')).mode & 0o777).to.equal(0o600);
    const deviceCrt = fs.readFileSync(path.join(bundle, 'device.crt'), 'utf8');
    expect(new X509Certificate(deviceCrt).subject).to.equal('CN=44:8a:5b:9c:70:93');
    expect(rows[0][1]).to.equal(fp(deviceCrt));
    expect(new Date(rows[0][2]).getTime()).to.equal(
      new Date(new X509Certificate(deviceCrt).validTo).getTime(),
    );

    const points = path.join(work, 'points.csv');
    fs.writeFileSync(points, '1526292559214,95\n1526292559839,96\n');
    const tls = [
      '--cacert',
      path.join(bundle, 'server-ca.crt'),
      '--cert',
      path.join(bundle, 'device.crt'),
      '--key',
      path.join(bundle, 'device.key'),
    ];
    const up = await curl([...tls, '-F', `hr_measurement=@${points};type=text/plain`, url()]);
    expect(up.status, up.text).to.equal(200);
    expect(up.json.stored).to.equal(2);
    const exported = await ok(['export', rows[0][1], 'hr_measurement']);
    expect(exported).to.equal('1526292559214,95\n1526292559839,96\n');

    const second = await ok([...args, '--server-ca', serverCa]);
    expect(second).to.contain('provisioned 0, existing 3');
    const again = manifest(out);
    expect(again.map((r) => r[3])).to.deep.equal(['exists', 'exists', 'exists']);
    expect(again.map((r) => r[1])).to.deep.equal(rows.map((r) => r[1]));
    expect(fs.readFileSync(path.join(bundle, 'device.crt'), 'utf8')).to.equal(deviceCrt);
  });

  it('reports a bad MAC line with its number and writes nothing', async () => {
    const { out, args } = await factoryLine('badmacs', '448a5b9c7093\n44:8a:5b:9c:70\n');
    const r = await fx().server.cli(args);
    expect(r.code).to.equal(1);
    expect(r.stderr).to.contain('line 2: "44:8a:5b:9c:70"');
    expect(fs.existsSync(out)).to.equal(false);
  });

  it('only pre-registered names enroll; --csr-dir signs CSRs whose keys never leave the station', async () => {
    const { identity, caDir, out, args } = await factoryLine('csr', '02:00:00:00:00:01\n');
    const csrDir = path.join(work, `${identity}-csr`);
    fs.mkdirSync(csrDir);
    const key = path.join(csrDir, 'station.key');
    certificateRequest(key, path.join(csrDir, '020000000001.csr'), '/CN=whatever');
    const serverCa = path.join(work, 'server-ca.pem');
    fs.writeFileSync(serverCa, fx().server.caPem);
    await ok([...args, '--csr-dir', csrDir, '--server-ca', serverCa]);
    const bundle = path.join(out, '020000000001');
    expect(fs.existsSync(path.join(bundle, 'device.key'))).to.equal(false);
    const enroll = (cert: string, keyFile: string) =>
      curl([
        '--cacert',
        serverCa,
        '--cert',
        cert,
        '--key',
        keyFile,
        '-H',
        'Content-Type: application/json',
        '-d',
        '{}',
        url(),
      ]);
    const good = await enroll(path.join(bundle, 'device.crt'), key);
    expect(good.status, good.text).to.equal(200);
    expect(good.json.name).to.equal('02:00:00:00:00:01');

    // A certificate of the same CA for a name nobody pre-registered.
    const stray = path.join(work, `${identity}-stray`);
    const strayMacs = path.join(work, `${identity}-stray.txt`);
    fs.writeFileSync(strayMacs, '02:00:00:00:00:99\n');
    // Issued by the factory CA but outside fleetgate's knowledge: sign with openssl directly.
    issueWithCaDir(caDir, stray, '02:00:00:00:00:99');
    const refused = await enroll(`${stray}.crt`, `${stray}.key`);
    expect(refused.status, refused.text).to.equal(403);
    expect(refused.json.code).to.equal('device_not_preregistered');

    // devices preregister admits it without issuing anything.
    await ok(['devices', 'preregister', identity, '--macs', strayMacs]);
    const admitted = await enroll(`${stray}.crt`, `${stray}.key`);
    expect(admitted.status, admitted.text).to.equal(200);
  });
});
