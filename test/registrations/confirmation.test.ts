import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { dumpAllTables, expectSecretNowhere } from '../support/database-dump.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import { RegistrationCurl, type DeviceFiles } from './registration-support.js';
import { serverLogCaughtUp } from '../support/server-log.js';

const PIN = /^[34679ACEFGHJKMNPRTWXY]{8}$/;

/**
 * Owner confirmation with a PIN (issue 12), every flow with plain curl over
 * mTLS for the device and the CLI or the admin API for the owner. Runs on
 * PostgreSQL (DATABASE_URL) and on the embedded database.
 */
describe('owner confirmation with a PIN', function () {
  this.timeout(180_000);
  const fx = useFixture({
    FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0',
    FLEETGATE_REGISTRATION_POLL_INTERVAL_MS: '0',
  });
  let dir: string;
  let dev: RegistrationCurl;
  /** Every PIN and nonce handed out, to look for in the database at the end. */
  const secrets: string[] = [];

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-registration-'));
    dev = new RegistrationCurl(fx, dir);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A device of a confirming identity that has just bound: its 202 answer. */
  async function started(identity?: string) {
    const name = identity ?? uniqueName('home');
    const psk = await dev.confirmingIdentity(name);
    const device = dev.device();
    const answer = await dev.bind(device, psk);
    expect(answer.status, answer.text).to.equal(202);
    secrets.push(answer.json.pin, answer.json.nonce);
    return { identity: name, psk, device, ...(answer.json as Started) };
  }

  it('runs the full flow: 202 with a PIN, owner confirms, device completes, uploads accepted', async () => {
    const s = await started();
    expect(Object.keys(s)).to.include.members(['rid', 'pin', 'nonce', 'expiresOn']);
    expect(s.status).to.equal('PENDING_USER_CONFIRMATION');
    expect(s.rid).to.match(/^[0-9a-f]{32}$/);
    expect(s.pin).to.match(PIN);
    expect(s.nonce).to.match(/^[0-9a-f]{64}$/);
    // 15 minutes by default.
    expect(s.expiresOn).to.be.greaterThan(Date.now() + 14 * 60_000);
    expect(s.expiresOn).to.be.at.most(Date.now() + 15 * 60_000);

    const polled = await dev.status(s.device, s.rid);
    expect(polled.status, polled.text).to.equal(200);
    expect(polled.json.status).to.equal('PENDING_USER_CONFIRMATION');
    const early = await dev.complete(s.device, s.rid, s.nonce);
    expect(early.status, early.text).to.equal(409);
    expect(early.json.code).to.equal('registration_pending_user_confirmation');

    const listed = JSON.parse(await dev.ok(['registration', 'list', s.identity, '--json']));
    expect(listed.registrations).to.have.length(1);
    expect(listed.registrations[0]).to.include({
      rid: s.rid,
      status: 'PENDING_USER_CONFIRMATION',
      fingerprint: s.device.fingerprint,
    });
    expect(JSON.stringify(listed)).not.to.contain(s.pin);
    const table = await dev.ok(['registration', 'list', s.identity]);
    expect(table).to.contain(s.rid);

    const confirmed = await dev.ok([
      'registration',
      'confirm',
      s.identity,
      s.pin,
      s.device.serial4,
    ]);
    expect(confirmed).to.contain(`confirmed registration ${s.rid}`);
    expect((await dev.status(s.device, s.rid)).json.status).to.equal('PENDING_DEVICE_COMPLETION');
    expect((await dev.upload(s.device)).json.code).to.equal('device_pending_confirmation');
    // The admin views say so too, until the device completes.
    const shown = await dev.admin('GET', `/v1/devices/${s.device.fingerprint}`);
    expect(shown.json.status, shown.text).to.equal('pending_confirmation');

    const wrongNonce = await dev.complete(s.device, s.rid, 'f'.repeat(64));
    expect(wrongNonce.status).to.equal(403);
    expect(wrongNonce.json.code).to.equal('invalid_nonce');
    const done = await dev.complete(s.device, s.rid, s.nonce);
    expect(done.status, done.text).to.equal(200);
    expect(done.json).to.include({
      status: 'REGISTERED',
      rid: s.rid,
      fingerprint: s.device.fingerprint,
      identity: s.identity,
    });
    const final = await dev.status(s.device, s.rid);
    expect(final.json).to.include({
      status: 'REGISTERED',
      fingerprint: s.device.fingerprint,
      identity: s.identity,
    });
    const up = await dev.upload(s.device);
    expect(up.status, up.text).to.equal(200);
    expect(up.json.stored).to.equal(1);
    expect((await dev.admin('GET', `/v1/devices/${s.device.fingerprint}`)).json.status).to.equal(
      'active',
    );
    // A repeat of the completion changes nothing.
    expect((await dev.complete(s.device, s.rid, s.nonce)).json.status).to.equal('REGISTERED');

    const events = (await dev.auditActions(s.identity)).filter((e) =>
      String(e.action).startsWith('registration.'),
    );
    expect(events.map((e) => e.action)).to.deep.equal([
      'registration.requested',
      'registration.confirmed',
      'registration.completed',
    ]);
    expect(events[1]).to.include({ actor: 'cli' });
    expect(JSON.stringify(events)).not.to.contain(s.pin);
    await serverLogCaughtUp(fx().server);
    expect(fx().server.output()).not.to.contain(s.pin);
  });

  it('refuses uploads and JSON messages before completion with 403 device_pending_confirmation', async () => {
    const s = await started();
    const up = await dev.upload(s.device);
    expect(up.status, up.text).to.equal(403);
    expect(up.json.code).to.equal('device_pending_confirmation');
    const message = await dev.as(s.device, [
      '-H',
      'Content-Type: application/json',
      '-d',
      '{"temp": 21.5}',
      dev.url('/messages'),
    ]);
    expect(message.status, message.text).to.equal(403);
    expect(message.json.code).to.equal('device_pending_confirmation');
    const whoAmI = await dev.as(s.device, [dev.url()]);
    expect(whoAmI.json.status).to.equal('pending_confirmation');
  });

  it('counts a wrong PIN against the request, then accepts the right one (admin API)', async () => {
    const s = await started();
    const wrong = await dev.confirm(s.identity, otherPin(s.pin), s.device.serial4);
    expect(wrong.status, wrong.text).to.equal(400);
    expect(wrong.json.code).to.equal('wrong_pin_or_serial');
    expect(wrong.json.details).to.deep.equal({ attemptsLeft: 4 });
    const listed = await dev.admin('GET', `/v1/identities/${s.identity}/registrations`);
    expect(listed.json.registrations[0]).to.include({ rid: s.rid, failedAttempts: 1 });
    const right = await dev.confirm(s.identity, s.pin.toLowerCase(), s.device.serial4);
    expect(right.status, right.text).to.equal(200);
    expect(right.json).to.include({ rid: s.rid, status: 'PENDING_DEVICE_COMPLETION' });
    const audit = await dev.auditActions(s.identity);
    const refused = audit.find((e) => e.action === 'registration.confirmation_refused')!;
    expect(refused).to.include({ actor: 'admin-api' });
    expect(refused.remoteAddress).to.be.a('string');
    expect(audit.find((e) => e.action === 'registration.confirmed')).to.include({
      actor: 'admin-api',
    });
  });

  it('revokes the request after five wrong PINs; the right PIN then hears revoked', async () => {
    const s = await started();
    for (let attempt = 1; attempt <= 5; attempt += 1) {
      const wrong = await dev.confirm(s.identity, otherPin(s.pin), s.device.serial4);
      expect(wrong.status, wrong.text).to.equal(400);
      expect(wrong.json.details).to.deep.equal({ attemptsLeft: 5 - attempt });
    }
    const polled = await dev.status(s.device, s.rid);
    expect(polled.json.status).to.equal('REVOKED');
    const right = await dev.confirm(s.identity, s.pin, s.device.serial4);
    expect(right.status, right.text).to.equal(409);
    expect(right.json.code).to.equal('registration_revoked');
    const complete = await dev.complete(s.device, s.rid, s.nonce);
    expect(complete.json.code).to.equal('registration_revoked');
    expect((await dev.upload(s.device)).json.code).to.equal('device_pending_confirmation');
    const audit = await dev.auditActions(s.identity);
    const revoked = audit.find((e) => e.action === 'registration.revoked')!;
    expect((revoked.details as Record<string, unknown>).reason).to.contain('too many');
    // The device starts again and can still be confirmed.
    const again = await dev.bind(s.device, s.psk);
    expect(again.status).to.equal(202);
    secrets.push(again.json.pin, again.json.nonce);
    const ok = await dev.confirm(s.identity, again.json.pin, s.device.serial4);
    expect(ok.status, ok.text).to.equal(200);
  });

  it('counts a wrong serial against the request', async () => {
    const s = await started();
    const serial = s.device.serial4 === 'ffff' ? '0000' : 'ffff';
    const wrong = await dev.confirm(s.identity, s.pin, serial);
    expect(wrong.status, wrong.text).to.equal(400);
    expect(wrong.json.code).to.equal('wrong_pin_or_serial');
    expect(wrong.json.details).to.deep.equal({ attemptsLeft: 4 });
    const cli = await fx().server.cli(['registration', 'confirm', s.identity, s.pin, serial]);
    expect(cli.code).to.not.equal(0);
    expect(cli.stderr).to.contain('do not match');
    const bad = await dev.confirm(s.identity, s.pin, 'xyz1');
    expect(bad.status).to.equal(400);
    expect(bad.json.code).to.equal('invalid_serial');
    const right = await dev.confirm(s.identity, s.pin, s.device.serial4.toUpperCase());
    expect(right.status, right.text).to.equal(200);
    expect(right.json.failedAttempts).to.equal(2);
  });

  it('revokes the earlier request when the same certificate asks again', async () => {
    const s = await started();
    const second = await dev.bind(s.device, s.psk);
    expect(second.status, second.text).to.equal(202);
    secrets.push(second.json.pin, second.json.nonce);
    expect(second.json.rid).to.not.equal(s.rid);
    expect((await dev.status(s.device, s.rid)).json.status).to.equal('REVOKED');
    const old = await dev.confirm(s.identity, s.pin, s.device.serial4);
    expect(old.status, old.text).to.equal(409);
    expect(old.json.code).to.equal('registration_revoked');
    const confirmed = await dev.confirm(s.identity, second.json.pin, s.device.serial4);
    expect(confirmed.status, confirmed.text).to.equal(200);
    expect((await dev.complete(s.device, s.rid, s.nonce)).json.code).to.equal(
      'registration_revoked',
    );
    const done = await dev.complete(s.device, second.json.rid, second.json.nonce);
    expect(done.status, done.text).to.equal(200);
    const audit = await dev.auditActions(s.identity);
    const revoked = audit.find((e) => e.action === 'registration.revoked')!;
    expect(revoked.details).to.include({ rid: s.rid });
  });

  it("answers 403 to another device's rid and 404 to an unknown one", async () => {
    const s = await started();
    const stranger = dev.device();
    const other = await dev.status(stranger, s.rid);
    expect(other.status, other.text).to.equal(403);
    expect(other.json.code).to.equal('registration_of_another_certificate');
    const steal = await dev.complete(stranger, s.rid, s.nonce);
    expect(steal.status).to.equal(403);
    for (const rid of ['0'.repeat(32), 'not-a-rid', '%00']) {
      const unknown = await dev.status(s.device, rid);
      expect(unknown.status, rid).to.equal(404);
      expect(unknown.json.code).to.equal('registration_not_found');
    }
    const wrongMethod = await dev.as(s.device, [
      '-X',
      'DELETE',
      dev.url(`/registrations/${s.rid}`),
    ]);
    expect(wrongMethod.status).to.equal(405);
    const notJson = await dev.as(s.device, [
      '-X',
      'PUT',
      '-d',
      'nonce',
      dev.url(`/registrations/${s.rid}`),
    ]);
    expect(notJson.status).to.equal(415);
    const noNonce = await dev.as(s.device, [
      '-X',
      'PUT',
      '-H',
      'Content-Type: application/json',
      '-d',
      '{"nonce": 5}',
      dev.url(`/registrations/${s.rid}`),
    ]);
    expect(noNonce.status).to.equal(400);
    expect(noNonce.json.code).to.equal('invalid_registration_request');
  });

  it('lets confirmation race completion: never 5xx, and the device ends REGISTERED', async () => {
    for (let round = 0; round < 3; round += 1) {
      const s = await started();
      const [confirm, complete] = await Promise.all([
        dev.confirm(s.identity, s.pin, s.device.serial4),
        dev.complete(s.device, s.rid, s.nonce),
      ]);
      expect(confirm.status, confirm.text).to.equal(200);
      expect(complete.status, complete.text).to.be.oneOf([200, 409]);
      if (complete.status === 409) {
        expect(complete.json.code).to.equal('registration_pending_user_confirmation');
        expect((await dev.complete(s.device, s.rid, s.nonce)).status).to.equal(200);
      }
      expect((await dev.status(s.device, s.rid)).json.status).to.equal('REGISTERED');
      expect((await dev.upload(s.device)).status).to.equal(200);
    }
  });

  it('leaves the flow unchanged when the policy is off, and follows identity set on|off', async () => {
    const identity = uniqueName('plain');
    await dev.ok(['identity', 'create', identity]);
    const psk = (await dev.ok(['psk', 'issue', identity])).trim();
    const plain = dev.device();
    const bound = await dev.bind(plain, psk);
    expect(bound.status, bound.text).to.equal(200);
    expect(bound.json.status).to.equal('bound');
    expect((await dev.upload(plain)).status).to.equal(200);
    const shown = JSON.parse(await dev.ok(['identity', 'show', identity, '--json']));
    expect(shown.requireConfirmation).to.equal(false);

    expect(await dev.ok(['identity', 'set', identity, '--require-confirmation', 'on'])).to.contain(
      'require confirmation on',
    );
    const waiting = dev.device();
    const pending = await dev.bind(waiting, psk);
    expect(pending.status, pending.text).to.equal(202);
    secrets.push(pending.json.pin, pending.json.nonce);
    // Devices already active stay active.
    expect((await dev.upload(plain)).status).to.equal(200);
    expect((await dev.bind(plain, psk)).status).to.equal(200);

    await dev.ok(['identity', 'set', identity, '--require-confirmation', 'off']);
    const again = await dev.bind(waiting, psk);
    expect(again.status, again.text).to.equal(200);
    expect(again.json.status).to.equal('already_bound');
    expect((await dev.upload(waiting)).status).to.equal(200);
    expect((await dev.status(waiting, pending.json.rid)).json.status).to.equal('REVOKED');

    const badFlag = await fx().server.cli([
      'identity',
      'set',
      identity,
      '--require-confirmation',
      'yes',
    ]);
    expect(badFlag.code).to.not.equal(0);
    expect(badFlag.stderr).to.contain('on or off');
  });

  it('sets the policy through the admin API and documents the routes in OpenAPI', async () => {
    const identity = uniqueName('api');
    const created = await dev.admin('POST', '/v1/identities', {
      name: identity,
      requireConfirmation: true,
    });
    expect(created.status, created.text).to.equal(201);
    expect(created.json.requireConfirmation).to.equal(true);
    const off = await dev.admin('PATCH', `/v1/identities/${identity}`, {
      requireConfirmation: false,
    });
    expect(off.status, off.text).to.equal(200);
    expect(off.json.requireConfirmation).to.equal(false);
    const empty = await dev.admin('PATCH', `/v1/identities/${identity}`, {});
    expect(empty.status).to.equal(400);
    const wrongType = await dev.admin('PATCH', `/v1/identities/${identity}`, {
      requireConfirmation: 'yes',
    });
    expect(wrongType.status).to.equal(400);
    const missing = await dev.admin('POST', '/v1/identities/nobody/registrations/confirm', {
      pin: 'AAAAAAAA',
      serialLast4: 'abcd',
    });
    expect(missing.status).to.equal(404);
    const shortPin = await dev.admin('POST', `/v1/identities/${identity}/registrations/confirm`, {
      pin: 'ABC',
      serialLast4: 'abcd',
    });
    expect(shortPin.json.code).to.equal('invalid_pin');
    const doc = await dev.admin('GET', '/openapi.json');
    expect(doc.json.paths).to.have.property('/v1/identities/{name}/registrations');
    expect(doc.json.paths).to.have.property('/v1/identities/{name}/registrations/confirm');
    expect(doc.json.components.schemas.Identity.properties.requireConfirmation.type).to.equal(
      'boolean',
    );
  });

  it('stores PINs and nonces hashed only (database dump)', async function () {
    this.timeout(120_000);
    expect(secrets.length).to.be.greaterThan(10);
    // The embedded database is read from its directory: the server stops first.
    await fx().server.stop();
    const cells = await dumpAllTables(fx().db);
    for (const secret of secrets) expectSecretNowhere(cells, secret, '');
  });
});

interface Started {
  status: string;
  rid: string;
  pin: string;
  nonce: string;
  expiresOn: number;
}

/** A PIN of the same alphabet that is not `pin`. */
function otherPin(pin: string): string {
  return pin.startsWith('A') ? `C${pin.slice(1)}` : `A${pin.slice(1)}`;
}

export type { DeviceFiles };
