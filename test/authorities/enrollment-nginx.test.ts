import fs from 'node:fs';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import { expect } from 'chai';
import { curl } from '../support/curl.js';
import { INTERMEDIATE_EXT, useDevicePki } from '../support/device-pki.js';
import { useFleetgateBehindNginx } from '../support/nginx-suite.js';
import { sClient } from '../support/openssl-client.js';

/**
 * Chain enrollment behind a real nginx. nginx forwards only the device
 * certificate, so it verifies the intermediates itself with the CAs
 * `fleetgate nginx-config` renders (device-cas.pem), and fleetgate believes its
 * verdict when exactly one registered CA can be the chain's anchor. The tests
 * run in order: each changes the CAs the next one starts from.
 */
describe('enrollment by certificate chain behind nginx', function () {
  this.timeout(180_000);
  const front = useFleetgateBehindNginx({ FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0' });
  const ca = useDevicePki(() => ({
    server: front.app,
    caPem: front.nginx.caPem,
    baseUrl: front.nginx.baseUrl,
  }));
  const { ok, enroll, upload } = ca;
  const refusal = async (device: string, chain: string[], code: string, status = 403) => {
    const answer = await enroll(device, chain);
    expect(answer.status, answer.text).to.equal(status);
    expect(answer.json.code, answer.text).to.equal(code);
    return answer.json as { code: string; error: string; details?: Record<string, unknown> };
  };
  const auditOf = async (identity: string, action: string) =>
    (
      JSON.parse(await ok(['audit', identity, '--action', action, '--json'])) as {
        events: { fingerprint: string; details: Record<string, unknown> }[];
      }
    ).events;

  /** Refusals before any CA was found belong to no identity: found by the device. */
  const refusalsOfDevice = async (device: string) => {
    const fingerprint = new X509Certificate(
      fs.readFileSync(ca.pki.file(`${device}.crt`)),
    ).fingerprint256
      .replace(/:/g, '')
      .toLowerCase();
    return (
      JSON.parse(
        await ok(['audit', '--device', fingerprint, '--action', 'device.enroll_refused', '--json']),
      ) as { events: { details: Record<string, unknown> }[] }
    ).events;
  };

  it('enrolls a device issued directly by a trusted CA (fleetgate checks that one itself)', async () => {
    await ok(['identity', 'create', 'proxied']);
    ca.pki.root('proxied-root');
    await ok(['ca', 'trust', 'proxied', ca.pki.file('proxied-root.crt')]);
    ca.pki.issue('direct-dev', 'proxied-root');
    const direct = await enroll('direct-dev', []);
    expect(direct.status, direct.text).to.equal(200);
    expect(direct.json.status).to.equal('enrolled');
    const [event] = await auditOf('proxied', 'device.enrolled');
    expect(event!.details.verifiedBy).to.equal('fleetgate');
  });

  it('enrolls a leaf + intermediate chain with the root trusted only, once nginx has the CAs', async () => {
    ca.pki.issue('proxied-inter', 'proxied-root', { ext: INTERMEDIATE_EXT });
    ca.pki.issue('chained-dev', 'proxied-inter', { cn: 'aa:bb:cc:00:00:01' });
    // nginx started before the root was trusted: it cannot verify the intermediate yet.
    const early = await refusal('chained-dev', ['proxied-inter'], 'chain_incomplete');
    expect(early.error).to.contain('intermediate');

    await front.nginx.reload();
    expect(fs.readFileSync(path.join(front.nginx.prefix, 'device-cas.pem'), 'utf8')).to.equal(
      fs.readFileSync(ca.pki.file('proxied-root.crt'), 'utf8'),
    );
    const chained = await enroll('chained-dev', ['proxied-inter']);
    expect(chained.status, chained.text).to.equal(200);
    expect(chained.json).to.include({
      status: 'enrolled',
      identity: 'proxied',
      name: 'aa:bb:cc:00:00:01',
    });
    const enrolled = await auditOf('proxied', 'device.enrolled');
    const event = enrolled.find((e) => e.fingerprint === chained.json.fingerprint);
    expect(event?.details.verifiedBy).to.equal('proxy');
    const up = await upload('chained-dev', ['proxied-inter'], '1526292559214,95\n');
    expect(up.status, up.text).to.equal(200);
    expect(up.json.stored).to.equal(1);
    // The first upload of another device enrolls it too.
    ca.pki.issue('chained-dev2', 'proxied-inter', { cn: 'aa:bb:cc:00:00:02' });
    const first = await upload('chained-dev2', ['proxied-inter'], '1526292559214,1\n');
    expect(first.status, first.text).to.equal(200);
    expect(first.json.stored).to.equal(1);
  });

  it('refuses chains to an untrusted root, expired intermediates and names already taken as direct mode does', async () => {
    ca.pki.root('stranger-root');
    ca.pki.issue('stranger-inter', 'stranger-root', { ext: INTERMEDIATE_EXT });
    ca.pki.issue('stranger-dev', 'stranger-inter');
    await refusal('stranger-dev', ['stranger-inter'], 'chain_incomplete');
    // nginx replaces a verdict the device sends itself.
    const digest = fs.readFileSync(path.join(front.nginx.prefix, 'nginx.conf'), 'utf8');
    const spoofed = await curl([
      ...ca.tls('stranger-dev', ['stranger-inter']),
      '-H',
      'X-Client-Verify: SUCCESS',
      '-H',
      `X-Client-Trust-Anchors: ${/x-client-trust-anchors ([0-9a-f]{64})/.exec(digest)![1]}`,
      '-H',
      'Content-Type: application/json',
      '-d',
      '{}',
      ca.url(),
    ]);
    expect(spoofed.status, spoofed.text).to.equal(403);
    expect(spoofed.json.code).to.equal('chain_incomplete');
    const untrusted = await refusal(
      'stranger-dev',
      ['stranger-inter', 'stranger-root'],
      'ca_untrusted',
    );
    expect(untrusted.error).to.contain('fleetgate ca trust');

    ca.pki.issue('old-inter', 'proxied-root', {
      ext: INTERMEDIATE_EXT,
      startDate: '20200101000000Z',
      endDate: '20210101000000Z',
    });
    ca.pki.issue('old-dev', 'old-inter');
    const expired = await refusal('old-dev', ['old-inter'], 'chain_invalid');
    expect(expired.details?.reason).to.equal('expired');

    ca.pki.issue('twin-dev', 'proxied-inter', { cn: 'aa:bb:cc:00:00:01' });
    await refusal('twin-dev', ['proxied-inter'], 'device_name_taken', 409);

    // Refusals are audited with their reason, as in direct mode.
    const [expiredEvent] = await refusalsOfDevice('old-dev');
    expect(expiredEvent?.details.code).to.equal('chain_invalid');
    expect(expiredEvent?.details.cause).to.equal('expired');
    expect(String(expiredEvent?.details.reason)).to.contain('expired');
    expect(expiredEvent?.details.proxyVerify).to.match(/^FAILED:/);
    const [untrustedEvent] = await refusalsOfDevice('stranger-dev');
    expect(untrustedEvent?.details.code).to.be.oneOf(['chain_incomplete', 'ca_untrusted']);
    const taken = await auditOf('proxied', 'device.enroll_refused');
    expect(taken.map((e) => e.details.code)).to.include('device_name_taken');
  });

  it("refuses an intermediate minted under another identity's factory CA (its path length is 0)", async () => {
    await ok(['identity', 'create', 'factory']);
    const caDir = path.join(ca.pki.dir, 'factory-ca');
    await ok(['ca', 'create', 'factory', '--out', caDir]);
    fs.copyFileSync(path.join(caDir, 'ca.crt'), ca.pki.file('factory-ca.crt'));
    fs.copyFileSync(path.join(caDir, 'ca.key'), ca.pki.file('factory-ca.key'));
    await front.nginx.reload();
    // An intermediate named like the vendor's, signed by the factory CA's key.
    ca.pki.issue('forged-inter', 'factory-ca', { cn: 'proxied-inter', ext: INTERMEDIATE_EXT });
    ca.pki.issue('forged-dev', 'forged-inter', { cn: 'aa:bb:cc:00:00:66' });
    const forged = await refusal('forged-dev', ['forged-inter'], 'chain_invalid');
    expect(forged.details?.proxyVerify).to.match(/path length/);
    // The factory CA cannot be an anchor above an intermediate: vendor chains still enroll.
    ca.pki.issue('chained-dev3', 'proxied-inter', { cn: 'aa:bb:cc:00:00:03' });
    const after = await enroll('chained-dev3', ['proxied-inter']);
    expect(after.status, after.text).to.equal(200);
  });

  it('answers 503 proxy_trust_stale until nginx is reloaded, then refuses when two CAs could be the anchor', async () => {
    ca.pki.issue('chained-dev4', 'proxied-inter', { cn: 'aa:bb:cc:00:00:04' });
    // A TLS session carries nginx's verdict: one from before a CA change must not be resumed after it.
    const session = ca.pki.file('dev4.session');
    const tls = (more: string[]) =>
      sClient(front.nginx.port, [
        '-tls1_2',
        '-cert',
        ca.pki.chainFile('chained-dev4', ['proxied-inter']),
        '-key',
        ca.pki.file('chained-dev4.key'),
        ...more,
      ]);
    expect(/(New|Reused), /.exec(await tls(['-sess_out', session]))?.[0]).to.equal('New, ');
    const before = await tls(['-sess_in', session]);
    expect(/(New|Reused), /.exec(before)?.[0], 'resumed before the change').to.equal('Reused, ');

    await ok(['identity', 'create', 'other-vendor']);
    ca.pki.root('other-root');
    await ok(['ca', 'trust', 'other-vendor', ca.pki.file('other-root.crt')]);
    const stale = await enroll('chained-dev4', ['proxied-inter']);
    expect(stale.status, stale.text).to.equal(503);
    expect(stale.json.code).to.equal('proxy_trust_stale');

    await front.nginx.reload();
    const resumed = await tls(['-sess_in', session]);
    expect(/(New|Reused), [^\n]*/.exec(resumed)?.[0], resumed.slice(-1500)).to.match(/^New, /);
    const ambiguous = await refusal('chained-dev4', ['proxied-inter'], 'chain_incomplete');
    expect(ambiguous.details?.reason).to.equal('proxy_anchor_ambiguous');
    // Trusting the intermediate lets fleetgate check the whole path itself again.
    await ok(['ca', 'trust', 'proxied', ca.pki.file('proxied-inter.crt')]);
    const trusted = await enroll('chained-dev4', ['proxied-inter']);
    expect(trusted.status, trusted.text).to.equal(200);

    const list = await ok(['ca', 'list', 'proxied', '--json']);
    const inter = (JSON.parse(list) as { fingerprint: string; subject: string }[]).find((ca) =>
      ca.subject.includes('proxied-inter'),
    );
    await ok(['ca', 'remove', 'proxied', inter!.fingerprint]);
    const otherList = JSON.parse(await ok(['ca', 'list', 'other-vendor', '--json'])) as {
      fingerprint: string;
    }[];
    await ok(['ca', 'remove', 'other-vendor', otherList[0]!.fingerprint]);
    await front.nginx.reload();
  });

  it('keeps the rules of the identity: pre-registered names only', async () => {
    const macs = ca.pki.file('macs.txt');
    fs.writeFileSync(macs, 'aa:bb:cc:00:00:10\n');
    await ok(['devices', 'preregister', 'proxied', '--macs', macs]);
    ca.pki.issue('listed-dev', 'proxied-inter', { cn: 'aa:bb:cc:00:00:10' });
    ca.pki.issue('unlisted-dev', 'proxied-inter', { cn: 'aa:bb:cc:00:00:11' });
    await refusal('unlisted-dev', ['proxied-inter'], 'device_not_preregistered');
    const listed = await enroll('listed-dev', ['proxied-inter']);
    expect(listed.status, listed.text).to.equal(200);
  });

  it("refuses devices under the root's CRL: revoked ones, and unseen intermediates it cannot check", async () => {
    ca.pki.issue('revoked-dev', 'proxied-root', { cn: 'aa:bb:cc:00:00:12' });
    ca.pki.revoke('revoked-dev', 'proxied-root');
    await ok(['ca', 'crl', 'proxied', ca.pki.crl('proxied-root')]);
    // fleetgate sees this whole path: refused exactly as in direct mode.
    await refusal('revoked-dev', [], 'certificate_revoked_by_ca');
    // The intermediate never reaches fleetgate, so the CRL cannot be applied to it: refused.
    ca.pki.issue('late-dev', 'proxied-inter', { cn: 'aa:bb:cc:00:00:10' });
    const unverifiable = await refusal('late-dev', ['proxied-inter'], 'chain_incomplete');
    expect(unverifiable.details?.reason).to.equal('revocation_unverifiable');
    const refused = await auditOf('proxied', 'device.enroll_refused');
    expect(refused.map((e) => e.details.cause)).to.include.members(['revocation_unverifiable']);
    expect(refused.map((e) => e.details.code)).to.include('certificate_revoked_by_ca');
  });
});
