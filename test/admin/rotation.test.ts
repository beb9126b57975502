import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { useFleetgate, boundDevice } from '../support/admin-client.js';
import { DeviceClient, newDevice, type TestDevice } from '../support/device-client.js';
import { readmeBlock, runReadmeScript, writeFiles } from '../support/readme-block.js';
import {
  completeRotation,
  opensslKeyPair,
  opensslSign,
  proveRotation,
  requestChallenge,
  rotationMessage,
  submitRotation,
} from '../support/rotation.js';

const points = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => `${from + i * 1000},${i}`).join('\n');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('device status and certificate rotation', () => {
  const fg = useFleetgate();
  let psk: string;

  before(async () => {
    psk = await fg.admin.identityWithPsk('rotating');
  });

  const actionsOf = async (fingerprint: string) =>
    (await fg.admin.get(`/v1/audit?fingerprint=${fingerprint}&limit=100`)).json.events.map(
      (e: { action: string }) => e.action,
    ) as string[];

  it('tells a device whether its certificate is unbound or active', async () => {
    const device = newDevice();
    const client = new DeviceClient(fg.server, device);
    try {
      const before = await client.send('GET');
      expect(before.status).to.equal(200);
      expect(before.json).to.deep.include({ status: 'unbound', fingerprint: device.fingerprint });
      expect(before.json).to.not.have.property('identity');
      await client.bind(psk);
      const after = await client.send('GET');
      expect(after.json).to.deep.include({ status: 'active', identity: 'rotating' });
      expect(Date.parse(after.json.boundAt)).to.be.closeTo(Date.now(), 60_000);
      const anonymous = new DeviceClient(fg.server, null);
      expect((await anonymous.send('GET')).status).to.equal(401);
      await anonymous.close();
    } finally {
      await client.close();
    }
  });

  it('rotates to an openssl ECDSA P-256 key with proof of possession and an explicit completion', async () => {
    const oldCert = newDevice({ commonName: 'meter-7' });
    const nextCert = opensslKeyPair('ec', 'meter-7');
    const oldClient = await boundDevice(fg.server, oldCert, psk);
    const newClient = new DeviceClient(fg.server, nextCert);
    try {
      expect(
        (await oldClient.upload([{ name: 'temp', content: points(1_700_000_000_000, 3) }])).status,
      ).to.equal(200);
      const deviceId = (await fg.admin.get(`/v1/devices/${oldCert.fingerprint}`)).json.id;

      const challenge = await requestChallenge(oldClient);
      expect(challenge.status).to.equal(200);
      expect(challenge.json.challenge).to.match(/^[A-Za-z0-9_-]{43}$/);
      expect(Date.parse(challenge.json.expiresOn)).to.be.greaterThan(Date.now());
      const signature = opensslSign(
        nextCert.keyPem,
        rotationMessage(challenge.json.challenge, oldCert.fingerprint, nextCert.fingerprint),
      );
      const rotation = await submitRotation(oldClient, {
        certificate: nextCert.certPem,
        challenge: challenge.json.challenge,
        signature,
      });
      expect(rotation.status).to.equal(202);
      expect(rotation.json).to.deep.include({
        status: 'pending',
        fingerprint: nextCert.fingerprint,
        replaces: oldCert.fingerprint,
      });
      const secret: string = rotation.json.completionSecret;
      expect(secret).to.match(/^fgrot_[A-Za-z0-9_-]{43}$/);
      // The challenge is single-use: the same proof again is refused.
      const replay = await submitRotation(oldClient, {
        certificate: nextCert.certPem,
        challenge: challenge.json.challenge,
        signature,
      });
      expect(replay.status).to.equal(400);
      expect(replay.json.code).to.equal('invalid_rotation_challenge');

      const shown = (await fg.admin.get(`/v1/devices/${oldCert.fingerprint}`)).json;
      expect(shown.pendingCertificate.fingerprint).to.equal(nextCert.fingerprint);
      expect(shown.certificate.fingerprint).to.equal(oldCert.fingerprint);
      // The device lists (one query for the page's pending rotations) show it too.
      for (const list of ['/v1/identities/rotating/devices', '/v1/devices?limit=1000']) {
        const page = (await fg.admin.get(list)).json.devices as Array<{
          certificate: { fingerprint: string } | null;
          pendingCertificate: { fingerprint: string } | null;
        }>;
        const row = page.find((d) => d.certificate?.fingerprint === oldCert.fingerprint);
        expect(row?.pendingCertificate?.fingerprint, list).to.equal(nextCert.fingerprint);
      }
      const listed = (await fg.admin.get('/v1/rotations?identity=rotating')).json.rotations;
      expect(listed.map((r: { fingerprint: string }) => r.fingerprint)).to.include(
        nextCert.fingerprint,
      );

      // Merely presenting the pending certificate activates nothing and reaches no device.
      expect((await newClient.send('GET')).json.status).to.equal('unbound');
      const early = await newClient.upload([
        { name: 'temp', content: points(1_700_000_005_000, 1) },
      ]);
      expect(early.status).to.equal(403);
      expect(early.json.code).to.equal('certificate_not_bound');
      // The old certificate keeps working until the completion.
      expect(
        (await oldClient.upload([{ name: 'temp', content: points(1_700_000_010_000, 2) }])).status,
      ).to.equal(200);
      // Only the new certificate with the secret completes: not the old one, not a wrong secret.
      const byOld = await completeRotation(oldClient, secret);
      expect(byOld.status).to.equal(403);
      expect(byOld.json.code).to.equal('rotation_not_found');
      const wrong = await completeRotation(newClient, `fgrot_${'A'.repeat(43)}`);
      expect(wrong.status).to.equal(403);
      expect(wrong.json.code).to.equal('rotation_not_found');
      expect((await completeRotation(newClient, 42)).json.code).to.equal(
        'invalid_rotation_request',
      );

      const done = await completeRotation(newClient, secret);
      expect(done.status).to.equal(200);
      expect(done.json).to.deep.include({
        status: 'active',
        fingerprint: nextCert.fingerprint,
        identity: 'rotating',
        replaces: oldCert.fingerprint,
      });
      expect((await completeRotation(newClient, secret)).status).to.equal(403); // single use
      expect((await newClient.send('GET')).json).to.deep.include({
        status: 'active',
        identity: 'rotating',
      });
      expect(
        (await newClient.upload([{ name: 'temp', content: points(1_700_000_020_000, 4) }])).status,
      ).to.equal(200);

      // From then on the old one is refused, on its already open connection too.
      const refused = await oldClient.upload([
        { name: 'temp', content: points(1_700_000_030_000, 1) },
      ]);
      expect(refused.status).to.equal(403);
      expect(refused.json.code).to.equal('certificate_retired');
      expect((await oldClient.send('GET')).json.status).to.equal('retired');
      expect((await oldClient.bind(psk)).json.code).to.equal('certificate_retired');

      const device = (await fg.admin.get(`/v1/devices/${nextCert.fingerprint}`)).json;
      expect(device.id).to.equal(deviceId);
      expect(device.certificate.fingerprint).to.equal(nextCert.fingerprint);
      expect(device.pendingCertificate).to.equal(null);
      const states = Object.fromEntries(
        device.certificates.map((c: { fingerprint: string; state: string }) => [
          c.fingerprint,
          c.state,
        ]),
      );
      expect(states).to.deep.equal({
        [oldCert.fingerprint]: 'retired',
        [nextCert.fingerprint]: 'active',
      });
      const series = (await fg.admin.get(`/v1/devices/${nextCert.fingerprint}/series`)).json.series;
      expect(series).to.have.length(1);
      expect(series[0]).to.deep.include({ name: 'temp', points: 9 });

      expect(await actionsOf(nextCert.fingerprint)).to.include.members([
        'certificate.rotation_challenge_issued',
        'certificate.rotation_requested',
        'certificate.activated',
      ]);
      const audit = (await fg.admin.get(`/v1/audit?fingerprint=${nextCert.fingerprint}`)).json
        .events;
      const activated = audit.find((e: { action: string }) => e.action === 'certificate.activated');
      expect(activated.fingerprint).to.equal(nextCert.fingerprint);
      expect(activated.details.replaces).to.equal(oldCert.fingerprint);
      expect(activated.remoteAddress).to.match(/127\.0\.0\.1/);
    } finally {
      await oldClient.close();
      await newClient.close();
    }
  });

  it('rotates to an openssl RSA key, the PEM sent as is with the proof in headers', async () => {
    const oldCert = opensslKeyPair('rsa', 'meter-8');
    const nextCert = opensslKeyPair('rsa', 'meter-8');
    const oldClient = await boundDevice(fg.server, oldCert, psk);
    const newClient = new DeviceClient(fg.server, nextCert);
    try {
      const challenge = (await requestChallenge(oldClient)).json.challenge as string;
      const signature = opensslSign(
        nextCert.keyPem,
        rotationMessage(challenge, oldCert.fingerprint, nextCert.fingerprint),
      );
      const rotation = await oldClient.send(
        'POST',
        nextCert.certPem,
        {
          'content-type': 'application/x-pem-file',
          'x-rotation-challenge': challenge,
          'x-rotation-signature': signature,
        },
        '/device_endpoint/rotate',
      );
      expect(rotation.status).to.equal(202);
      const done = await completeRotation(newClient, rotation.json.completionSecret);
      expect(done.status).to.equal(200);
      expect((await newClient.send('GET')).json.status).to.equal('active');
    } finally {
      await oldClient.close();
      await newClient.close();
    }
  });

  it("refuses to take a stranger's public certificate: the stranger binds and uploads as itself", async () => {
    const attackerPsk = await fg.admin.identityWithPsk('attacker');
    const victimPsk = await fg.admin.identityWithPsk('victim');
    const attacker = newDevice();
    const victim = opensslKeyPair('ec', 'victim-sensor'); // its public certificate leaked
    const attackerClient = await boundDevice(fg.server, attacker, attackerPsk);
    const victimClient = new DeviceClient(fg.server, victim);
    try {
      // The attacker has the victim's certificate, not its key: every way of asking fails.
      const bare = await attackerClient.send(
        'POST',
        victim.certPem,
        { 'content-type': 'application/x-pem-file' },
        '/device_endpoint/rotate',
      );
      expect(bare.status).to.equal(400);
      expect(bare.json.code).to.equal('invalid_rotation_request');
      const challenge = (await requestChallenge(attackerClient)).json.challenge as string;
      const message = rotationMessage(challenge, attacker.fingerprint, victim.fingerprint);
      const signedWithOwnKey = await submitRotation(attackerClient, {
        certificate: victim.certPem,
        challenge,
        signature: opensslSign(attacker.keyPem, message),
      });
      expect(signedWithOwnKey.status).to.equal(400);
      expect(signedWithOwnKey.json.code).to.equal('invalid_rotation_signature');
      const guessed = await submitRotation(attackerClient, {
        certificate: victim.certPem,
        challenge: 'A'.repeat(43),
        signature: opensslSign(attacker.keyPem, message),
      });
      expect(guessed.status).to.equal(400);
      expect(guessed.json.code).to.equal('invalid_rotation_challenge');
      // A signature the victim once made for its own rotation does not transfer either.
      expect((await fg.admin.get('/v1/rotations?identity=attacker')).json.rotations).to.deep.equal(
        [],
      );

      // The victim enrolls with its own identity's PSK, and its data is its own.
      const bound = await victimClient.bind(victimPsk);
      expect(bound.status).to.equal(200);
      expect(bound.json).to.deep.include({ status: 'bound', identity: 'victim' });
      const upload = await victimClient.upload([
        { name: 'heart', content: points(1_700_000_000_000, 3) },
      ]);
      expect(upload.status).to.equal(200);
      const victimDevice = (await fg.admin.get(`/v1/devices/${victim.fingerprint}`)).json;
      expect(victimDevice.identity).to.equal('victim');
      const attackerDevice = (await fg.admin.get(`/v1/devices/${attacker.fingerprint}`)).json;
      expect(victimDevice.id).to.not.equal(attackerDevice.id);
      expect(
        attackerDevice.certificates.map((c: { fingerprint: string }) => c.fingerprint),
      ).to.deep.equal([attacker.fingerprint]);
      expect(
        (await fg.admin.get(`/v1/devices/${attacker.fingerprint}/series`)).json.series,
      ).to.deep.equal([]);
      expect(
        (await fg.admin.get(`/v1/devices/${victim.fingerprint}/series`)).json.series[0],
      ).to.deep.include({ name: 'heart', points: 3 });
      expect(await actionsOf(victim.fingerprint)).to.include('certificate.rotation_refused');
    } finally {
      await attackerClient.close();
      await victimClient.close();
    }
  });

  // The attack of issue 9 as it was reproduced, with nothing but the pre-existing requests: each
  // step checks what the victim sees, so on the old code these fail exactly where the attack bit.
  for (const revokeAttacker of [false, true]) {
    it(`the issue 9 attack${revokeAttacker ? ', attacker revoked' : ''}: the victim binds and its uploads go to itself`, async () => {
      const tag = revokeAttacker ? 'r' : 'k';
      const attackerPsk = await fg.admin.identityWithPsk(`mallory-${tag}`);
      const victimPsk = await fg.admin.identityWithPsk(`alice-${tag}`);
      const attacker = newDevice();
      const victim = newDevice();
      const attackerClient = await boundDevice(fg.server, attacker, attackerPsk);
      const victimClient = new DeviceClient(fg.server, victim);
      try {
        const submitted = await attackerClient.send(
          'POST',
          victim.certPem,
          { 'content-type': 'application/x-pem-file' },
          '/device_endpoint/rotate',
        );
        if (revokeAttacker) {
          const revoked = await fg.admin.post(`/v1/devices/${attacker.fingerprint}/revoke`);
          expect(revoked.status).to.equal(200);
        }
        // The victim uploads before enrolling (firmware retrying), then enrolls and uploads.
        const early = await victimClient.upload([
          { name: 'pulse', content: points(1_700_000_000_000, 2) },
        ]);
        expect(early.status).to.equal(403);
        expect(early.json.code).to.equal('certificate_not_bound');
        const bound = await victimClient.bind(victimPsk);
        expect(bound.status, bound.text).to.equal(200);
        expect(bound.json.identity).to.equal(`alice-${tag}`);
        expect(
          (await victimClient.upload([{ name: 'pulse', content: points(1_700_000_010_000, 2) }]))
            .status,
        ).to.equal(200);
        expect((await fg.admin.get(`/v1/devices/${victim.fingerprint}`)).json.identity).to.equal(
          `alice-${tag}`,
        );
        expect(
          (await fg.admin.get(`/v1/devices/${attacker.fingerprint}/series`)).json.series,
        ).to.deep.equal([]);
        expect(submitted.status).to.equal(400);
      } finally {
        await attackerClient.close();
        await victimClient.close();
      }
    });
  }

  it('never lets a pending rotation block or win over a bind of the certificate by anyone else', async () => {
    const otherPsk = await fg.admin.identityWithPsk('owner-elsewhere');
    const rotating = newDevice();
    const contested = opensslKeyPair('ec', 'contested');
    const rotatingClient = await boundDevice(fg.server, rotating, psk);
    const contestedClient = new DeviceClient(fg.server, contested);
    try {
      const rotation = await proveRotation(rotatingClient, rotating, contested);
      expect(rotation.status).to.equal(202);
      // The certificate enrolls with another identity's PSK: the bind wins.
      const bound = await contestedClient.bind(otherPsk);
      expect(bound.status).to.equal(200);
      expect(bound.json).to.deep.include({ status: 'bound', identity: 'owner-elsewhere' });
      expect((await fg.admin.get(`/v1/devices/${rotating.fingerprint}`)).json).to.deep.include({
        pendingCertificate: null,
      });
      const rotations = (await fg.admin.get('/v1/rotations')).json.rotations;
      expect(rotations.map((r: { fingerprint: string }) => r.fingerprint)).to.not.include(
        contested.fingerprint,
      );
      const dropped = (
        await fg.admin.get(
          `/v1/audit?fingerprint=${contested.fingerprint}&action=certificate.rotation_dropped`,
        )
      ).json.events;
      expect(dropped).to.have.length(1);
      expect(dropped[0].details.reason).to.equal('certificate_bound_by_enrollment');
      // The dropped rotation cannot be completed afterwards.
      const late = await completeRotation(contestedClient, rotation.json.completionSecret);
      expect(late.status).to.equal(403);
      const upload = await contestedClient.upload([
        { name: 'x', content: points(1_700_000_000_000, 2) },
      ]);
      expect(upload.status).to.equal(200);
      const owner = (await fg.admin.get(`/v1/devices/${contested.fingerprint}`)).json;
      expect(owner.identity).to.equal('owner-elsewhere');
      expect(
        (await fg.admin.get(`/v1/devices/${rotating.fingerprint}/series`)).json.series,
      ).to.deep.equal([]);
      // The rotating device keeps its certificate.
      expect((await rotatingClient.send('GET')).json.status).to.equal('active');
    } finally {
      await rotatingClient.close();
      await contestedClient.close();
    }
  });

  it('drops the pending rotations of a revoked device', async () => {
    const otherPsk = await fg.admin.identityWithPsk('after-revoke');
    const revoked = newDevice();
    const next = opensslKeyPair('ec', 'next');
    const revokedClient = await boundDevice(fg.server, revoked, psk);
    const nextClient = new DeviceClient(fg.server, next);
    try {
      const rotation = await proveRotation(revokedClient, revoked, next);
      expect(rotation.status).to.equal(202);
      const revoke = await fg.admin.post(`/v1/devices/${revoked.fingerprint}/revoke`, {
        reason: 'stolen',
      });
      expect(revoke.status).to.equal(200);
      expect(revoke.json.pendingCertificate).to.equal(null);
      const rotations = (await fg.admin.get('/v1/rotations')).json.rotations;
      expect(rotations.map((r: { deviceId: number }) => r.deviceId)).to.not.include(revoke.json.id);
      const dropped = (
        await fg.admin.get(
          `/v1/audit?fingerprint=${next.fingerprint}&action=certificate.rotation_dropped`,
        )
      ).json.events;
      expect(dropped.map((e: { details: { reason: string } }) => e.details.reason)).to.deep.equal([
        'device_revoked',
      ]);
      const complete = await completeRotation(nextClient, rotation.json.completionSecret);
      expect(complete.status).to.equal(403);
      expect((await nextClient.send('GET')).json.status).to.equal('unbound');
      // Nothing blocks the certificate any more.
      const bound = await nextClient.bind(otherPsk);
      expect(bound.status).to.equal(200);
      expect(bound.json.identity).to.equal('after-revoke');
    } finally {
      await revokedClient.close();
      await nextClient.close();
    }
  });

  it('lists and cancels pending rotations through the admin API and the CLI', async () => {
    const first = newDevice();
    const second = newDevice();
    const firstNext = opensslKeyPair('ec');
    const secondNext = opensslKeyPair('rsa');
    const firstClient = await boundDevice(fg.server, first, psk);
    const secondClient = await boundDevice(fg.server, second, psk);
    const firstNextClient = new DeviceClient(fg.server, firstNext);
    try {
      const a = await proveRotation(firstClient, first, firstNext);
      const b = await proveRotation(secondClient, second, secondNext);
      expect([a.status, b.status]).to.deep.equal([202, 202]);

      const cliList = await fg.server.cli(['rotations', 'list', 'rotating', '--json']);
      expect(cliList.code, cliList.stderr).to.equal(0);
      const listed = JSON.parse(cliList.stdout) as { id: number; fingerprint: string }[];
      const byFingerprint = new Map(listed.map((r) => [r.fingerprint, r]));
      expect(byFingerprint.get(firstNext.fingerprint)).to.deep.include({
        replaces: first.fingerprint,
        identity: 'rotating',
      });
      const human = await fg.server.cli(['rotations', 'list']);
      expect(human.stdout).to.match(/^ID\s+IDENTITY\s+DEVICE\s+REPLACES/);
      expect(human.stdout).to.include(secondNext.fingerprint);

      const firstId = byFingerprint.get(firstNext.fingerprint)!.id;
      const cancelled = await fg.server.cli([
        'rotation',
        'cancel',
        String(firstId),
        '--reason',
        'x',
      ]);
      expect(cancelled.code, cancelled.stderr).to.equal(0);
      expect(cancelled.stdout).to.include(`cancelled rotation ${firstId}`);
      const again = await fg.server.cli(['rotation', 'cancel', String(firstId)]);
      expect(again.code).to.equal(1);
      expect(again.stderr).to.include(`no pending rotation has the id ${firstId}`);
      expect((await completeRotation(firstNextClient, a.json.completionSecret)).status).to.equal(
        403,
      );

      const secondId = byFingerprint.get(secondNext.fingerprint)!.id;
      const viaApi = await fg.admin.post(`/v1/rotations/${secondId}/cancel`, { reason: 'lost' });
      expect(viaApi.status).to.equal(200);
      expect(viaApi.json).to.deep.include({ id: secondId, fingerprint: secondNext.fingerprint });
      expect((await fg.admin.post(`/v1/rotations/${secondId}/cancel`)).status).to.equal(404);
      expect((await fg.admin.post('/v1/rotations/99999999999/cancel')).status).to.equal(400);
      expect((await fg.admin.get('/v1/rotations?cursor=99999999999')).status).to.equal(400);
      expect((await fg.admin.get('/v1/rotations?identity=nobody')).status).to.equal(404);
      const left = (await fg.admin.get('/v1/rotations?identity=rotating')).json.rotations;
      expect(left.map((r: { id: number }) => r.id)).to.not.include.members([firstId, secondId]);
      const cancelEvents = (
        await fg.admin.get('/v1/audit?action=certificate.rotation_cancelled&limit=10')
      ).json.events;
      expect(cancelEvents.map((e: { actor: string }) => e.actor)).to.include.members([
        'cli',
        'admin-api',
      ]);
      // Both devices still use their current certificates.
      expect((await firstClient.send('GET')).json.status).to.equal('active');
      expect((await secondClient.send('GET')).json.status).to.equal('active');
    } finally {
      await firstClient.close();
      await secondClient.close();
      await firstNextClient.close();
    }
  });

  it('binds a challenge to the certificate it was issued to, and refuses bad submissions', async () => {
    const mine = newDevice();
    const someoneElse = newDevice();
    const client = await boundDevice(fg.server, mine, psk);
    const other = await boundDevice(fg.server, someoneElse, psk);
    const prove = async (next: TestDevice, challengeFrom = client) => {
      const challenge = (await requestChallenge(challengeFrom)).json.challenge as string;
      return submitRotation(client, {
        certificate: next.certPem,
        challenge,
        signature: opensslSign(
          next.keyPem,
          rotationMessage(challenge, mine.fingerprint, next.fingerprint),
        ),
      });
    };
    try {
      // Another device's challenge is no use to this one.
      const foreign = await prove(opensslKeyPair('ec'), other);
      expect(foreign.status).to.equal(400);
      expect(foreign.json.code).to.equal('invalid_rotation_challenge');
      // A certificate bound elsewhere, or the current one, is already known.
      const taken = await prove(someoneElse);
      expect(taken.status).to.equal(409);
      expect(taken.json.code).to.equal('certificate_already_known');
      expect((await prove(mine)).status).to.equal(409);
      // The signature must cover this device's current fingerprint.
      const next = opensslKeyPair('ec');
      const challenge = (await requestChallenge(client)).json.challenge as string;
      const otherDevice = await submitRotation(client, {
        certificate: next.certPem,
        challenge,
        signature: opensslSign(
          next.keyPem,
          rotationMessage(challenge, someoneElse.fingerprint, next.fingerprint),
        ),
      });
      expect(otherDevice.json.code).to.equal('invalid_rotation_signature');
      const submit = (body: string, type = 'application/json') =>
        client.send('POST', body, { 'content-type': type }, '/device_endpoint/rotate');
      const garbage = await submit(
        JSON.stringify({
          certificate: '-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n',
          challenge: 'x',
          signature: 'x',
        }),
      );
      expect(garbage.status).to.equal(400);
      expect(garbage.json.code).to.equal('malformed_certificate');
      const expired = newDevice({
        notBefore: new Date(Date.now() - 2 * 86_400_000),
        notAfter: new Date(Date.now() - 86_400_000),
      });
      const old = await prove(expired);
      expect(old.status).to.equal(400);
      expect(old.json.code).to.equal('unacceptable_certificate');
      expect((await submit(JSON.stringify({ cert: 'x' }))).json.code).to.equal(
        'invalid_rotation_request',
      );
      expect((await submit('x', 'image/png')).status).to.equal(415);
      for (const p of ['/rotate', '/rotate/challenge', '/rotate/complete']) {
        expect((await client.send('GET', undefined, {}, `/device_endpoint${p}`)).status).to.equal(
          405,
        );
      }
      expect(
        (
          await client.send(
            'POST',
            'x',
            { 'content-type': 'text/plain' },
            '/device_endpoint/rotate/complete',
          )
        ).status,
      ).to.equal(415);
      // An unbound certificate can neither get a challenge nor rotate.
      const stranger = new DeviceClient(fg.server, newDevice());
      const unbound = await requestChallenge(stranger);
      expect(unbound.status).to.equal(403);
      expect(unbound.json.code).to.equal('certificate_not_bound');
      await stranger.close();
    } finally {
      await client.close();
      await other.close();
    }
  });

  it('the README walk-through rotates a certificate with curl and openssl, verbatim', async () => {
    const script = readmeBlock({
      heading: 'What a device can ask: status and certificate rotation',
    });
    const dir = fs.mkdtempSync(path.join(fg.db.workDir, 'readme-'));
    const current = opensslKeyPair('ec', 'sensor-0001');
    writeFiles(dir, {
      'ca.crt': fg.server.caPem,
      'current.crt': current.certPem,
      'current.key': { text: current.keyPem, mode: 0o600 },
    });
    const client = await boundDevice(fg.server, current, psk);
    try {
      const { code, stdout, stderr } = await runReadmeScript(
        script.replaceAll('https://fleet.example.com:8443', fg.server.baseUrl),
        { cwd: dir },
      );
      expect(code, stderr).to.equal(0);
      expect(stdout).to.include('"status":"active"');
      const nextPem = fs.readFileSync(path.join(dir, 'next.crt'), 'utf8');
      const next = opensslFingerprint(nextPem);
      const device = (await fg.admin.get(`/v1/devices/${current.fingerprint}`)).json;
      expect(device.certificate.fingerprint).to.equal(next);
      expect((await client.send('GET')).json.status).to.equal('retired');
    } finally {
      await client.close();
    }
  });
});

function opensslFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
}

describe('certificate rotation with a grace period', () => {
  const GRACE_MS = 4000;
  const fg = useFleetgate({ FLEETGATE_ROTATION_GRACE_MS: String(GRACE_MS) });

  it('accepts the old certificate inside the grace period and refuses it with certificate_retired after', async () => {
    const psk = await fg.admin.identityWithPsk('graceful');
    const oldCert: TestDevice = newDevice();
    const nextCert = opensslKeyPair('ec');
    const oldClient = await boundDevice(fg.server, oldCert, psk);
    const newClient = new DeviceClient(fg.server, nextCert);
    try {
      const rotation = await proveRotation(oldClient, oldCert, nextCert);
      const done = await completeRotation(newClient, rotation.json.completionSecret);
      expect(done.status).to.equal(200);
      const retireAt = Date.parse(done.json.previousCertificatesRetireAt);

      // Inside the grace period: the old certificate still uploads.
      const inside = await oldClient.upload([
        { name: 'temp', content: points(1_700_000_000_000, 2) },
      ]);
      const answeredAt = Date.now();
      expect(answeredAt, 'the machine was too slow to test inside the grace period').to.be.below(
        retireAt,
      );
      expect(inside.status).to.equal(200);
      const status = await oldClient.send('GET');
      expect(status.json.status).to.equal('active');
      expect(Date.parse(status.json.retiredAt)).to.equal(retireAt);
      // During the grace period only the newest certificate may rotate again.
      const again = await requestChallenge(oldClient);
      expect(again.status).to.equal(403);
      expect(again.json.code).to.equal('certificate_retiring');

      // After it: refused, with the code that says why.
      await sleep(retireAt - Date.now() + 200);
      const after = await oldClient.upload([
        { name: 'temp', content: points(1_700_000_010_000, 1) },
      ]);
      expect(after.status).to.equal(403);
      expect(after.json.code).to.equal('certificate_retired');
      expect((await oldClient.send('GET')).json.status).to.equal('retired');
      expect(
        (await newClient.upload([{ name: 'temp', content: points(1_700_000_020_000, 1) }])).status,
      ).to.equal(200);
      const series = (await fg.admin.get(`/v1/devices/${nextCert.fingerprint}/series`)).json.series;
      expect(series[0]).to.deep.include({ name: 'temp', points: 3 });
    } finally {
      await oldClient.close();
      await newClient.close();
    }
  });
});

describe('pending rotations expire', () => {
  const fg = useFleetgate({ FLEETGATE_ROTATION_PENDING_TTL_MS: '1500' });

  it('drops a rotation not completed in time and audits it', async () => {
    const psk = await fg.admin.identityWithPsk('slow');
    const oldCert = newDevice();
    const nextCert = opensslKeyPair('ec');
    const oldClient = await boundDevice(fg.server, oldCert, psk);
    const newClient = new DeviceClient(fg.server, nextCert);
    try {
      const rotation = await proveRotation(oldClient, oldCert, nextCert);
      expect(rotation.status).to.equal(202);
      expect(Date.parse(rotation.json.expiresOn) - Date.now()).to.be.at.most(1500);
      await sleep(Date.parse(rotation.json.expiresOn) - Date.now() + 200);
      const late = await completeRotation(newClient, rotation.json.completionSecret);
      expect(late.status).to.equal(410);
      expect(late.json.code).to.equal('rotation_expired');
      expect((await newClient.send('GET')).json.status).to.equal('unbound');
      expect((await oldClient.send('GET')).json.status).to.equal('active');
      const expired = (
        await fg.admin.get(
          `/v1/audit?fingerprint=${nextCert.fingerprint}&action=certificate.rotation_expired`,
        )
      ).json.events;
      expect(expired).to.have.length(1);
      expect(expired[0].actor).to.equal('server');

      // Another one, never completed, is dropped when the list is read.
      const second = opensslKeyPair('ec');
      expect((await proveRotation(oldClient, oldCert, second)).status).to.equal(202);
      await sleep(1700);
      expect((await fg.admin.get('/v1/rotations')).json.rotations).to.deep.equal([]);
      expect(
        (
          await fg.admin.get(
            `/v1/audit?fingerprint=${second.fingerprint}&action=certificate.rotation_expired`,
          )
        ).json.events,
      ).to.have.length(1);
    } finally {
      await oldClient.close();
      await newClient.close();
    }
  });
});
