import { expect } from 'chai';
import WebSocket from 'ws';
import { curl } from '../support/curl.js';
import { fixtureEndpoint, INTERMEDIATE_EXT, useDevicePki } from '../support/device-pki.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { openWatchedSocket } from '../support/websocket-client.js';

/**
 * Revocation by a CA's CRL is checked on every request, not only when the
 * device enrolls (issue 11): a CRL loaded after enrollment that lists the
 * device's certificate, or an intermediate of its chain, refuses the device's
 * next request with 403 certificate_revoked_by_ca.
 */
describe('revocation by CA CRL on every request', () => {
  const fx = useFixture({ FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0' });
  const ca = useDevicePki(fixtureEndpoint(() => fx().server));
  const { ok, enroll, upload, tls, url } = ca;

  const openWebSocket = (device: string) => openWatchedSocket(fx().server, ca.pems(device));

  it('refuses the next upload of an enrolled device once its CA’s CRL lists it', async () => {
    const { identity, root } = await ca.trustedRoot('crlreq');
    ca.pki.issue(`${identity}-dev`, root, { cn: 'revoked-later' });
    ca.pki.issue(`${identity}-other`, root, { cn: 'stays' });
    expect((await enroll(`${identity}-dev`, [])).status).to.equal(200);
    expect((await enroll(`${identity}-other`, [])).status).to.equal(200);
    const before = await upload(`${identity}-dev`, [], '1526292559214,1\n');
    expect(before.status, before.text).to.equal(200);
    // Both hold a WebSocket: the CRL's news closes the revoked certificate's
    // (the channel's poll looks at devices, not at CRLs: only the news can).
    const [revokedWs, otherWs] = await Promise.all(
      [`${identity}-dev`, `${identity}-other`].map((name) => openWebSocket(name)),
    );

    ca.pki.revoke(`${identity}-dev`, root);
    await ok(['ca', 'crl', identity, ca.pki.crl(root)]);
    expect(await revokedWs!.closed).to.deep.equal({ code: 1008, reason: 'certificate_refused' });
    expect(otherWs!.socket.readyState).to.equal(WebSocket.OPEN);
    otherWs!.socket.terminate();
    const after = await upload(`${identity}-dev`, [], '1526292559215,2\n');
    expect(after.status, after.text).to.equal(403);
    expect(after.json.code).to.equal('certificate_revoked_by_ca');
    expect(after.json.error).to.contain('CRL');
    const again = await enroll(`${identity}-dev`, []);
    expect(again.json.code, again.text).to.equal('certificate_revoked_by_ca');
    const status = await curl([...tls(`${identity}-dev`, []), url()]);
    expect(status.json.status, status.text).to.equal('revoked');
    // A device its CA did not revoke keeps uploading.
    const other = await upload(`${identity}-other`, [], '1526292559216,3\n');
    expect(other.status, other.text).to.equal(200);
  });

  it('refuses the next upload of every device under an intermediate once the root’s CRL revokes the intermediate', async () => {
    const { identity, root } = await ca.trustedRoot('crlinter');
    ca.pki.issue(`${identity}-bad`, root, { ext: INTERMEDIATE_EXT });
    ca.pki.issue(`${identity}-good`, root, { ext: INTERMEDIATE_EXT });
    ca.pki.issue(`${identity}-dev1`, `${identity}-bad`);
    ca.pki.issue(`${identity}-dev2`, `${identity}-good`);
    const first = await upload(`${identity}-dev1`, [`${identity}-bad`], '1526292559214,1\n');
    expect(first.status, first.text).to.equal(200);
    expect(
      (await upload(`${identity}-dev2`, [`${identity}-good`], '1526292559214,1\n')).status,
    ).to.equal(200);

    ca.pki.revoke(`${identity}-bad`, root);
    await ok(['ca', 'crl', identity, ca.pki.crl(root)]);
    const refused = await upload(`${identity}-dev1`, [`${identity}-bad`], '1526292559215,2\n');
    expect(refused.status, refused.text).to.equal(403);
    expect(refused.json.code).to.equal('certificate_revoked_by_ca');
    const kept = await upload(`${identity}-dev2`, [`${identity}-good`], '1526292559215,2\n');
    expect(kept.status, kept.text).to.equal(200);
    expect(kept.json.stored).to.equal(1);
  });
});

/** Refused enrollments use up the failed-bind budget of the address, as refused binds do. */
describe('enrollment failures are throttled like bind failures', () => {
  const fx = useFixture({
    FLEETGATE_BIND_FAILURES_PER_ADDRESS: '2',
    FLEETGATE_BIND_FAILURE_WINDOW_SECONDS: '600',
  });
  const ca = useDevicePki(fixtureEndpoint(() => fx().server));
  const { enroll, upload } = ca;

  it('answers 429 too_many_failed_binds after the budget of refused enrollments, by {} and by first upload', async () => {
    const name = uniqueName('rogue');
    ca.pki.root(`${name}-root`);
    ca.pki.issue(`${name}-dev`, `${name}-root`);
    for (let i = 0; i < 2; i++) {
      const refused = await enroll(`${name}-dev`, [`${name}-root`]);
      expect(refused.status, refused.text).to.equal(403);
      expect(refused.json.code).to.equal('ca_untrusted');
    }
    const throttled = await enroll(`${name}-dev`, [`${name}-root`]);
    expect(throttled.status, throttled.text).to.equal(429);
    expect(throttled.json.code).to.equal('too_many_failed_binds');
    // A first upload is an enrollment attempt too: same budget, same answer.
    const byUpload = await upload(`${name}-dev`, [`${name}-root`], '1526292559214,1\n');
    expect(byUpload.status, byUpload.text).to.equal(429);
    expect(byUpload.json.code).to.equal('too_many_failed_binds');
  });
});
