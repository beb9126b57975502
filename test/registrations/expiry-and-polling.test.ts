import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { useFixture, uniqueName } from '../support/fixture.js';
import { RegistrationCurl } from './registration-support.js';

/**
 * A short configured lifetime (FLEETGATE_REGISTRATION_LIFETIME_MS) and a
 * long poll interval (FLEETGATE_REGISTRATION_POLL_INTERVAL_MS), with curl.
 */
describe('owner confirmation: expiry and status polling', function () {
  this.timeout(180_000);
  const fx = useFixture({
    FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0',
    FLEETGATE_REGISTRATION_LIFETIME_MS: '1500',
    FLEETGATE_REGISTRATION_POLL_INTERVAL_MS: '60000',
  });
  let dir: string;
  let dev: RegistrationCurl;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetgate-registration-'));
    dev = new RegistrationCurl(fx, dir);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('expires a request after the configured lifetime: confirming it fails clearly', async () => {
    const identity = uniqueName('late');
    const psk = await dev.confirmingIdentity(identity);
    const device = dev.device();
    const answer = await dev.bind(device, psk);
    expect(answer.status, answer.text).to.equal(202);
    const { rid, pin, nonce, expiresOn } = answer.json;
    expect(expiresOn - Date.now()).to.be.at.most(1500);
    // Waiting is the point of this test: the request must outlive its lifetime.
    await sleep(Math.max(0, expiresOn - Date.now()) + 200);
    const confirm = await dev.confirm(identity, pin, device.serial4);
    expect(confirm.status, confirm.text).to.equal(410);
    expect(confirm.json.code).to.equal('registration_expired');
    expect(confirm.json.error).to.contain('expired');
    const polled = await dev.status(device, rid);
    expect(polled.status, polled.text).to.equal(200);
    expect(polled.json.status).to.equal('EXPIRED');
    const complete = await dev.complete(device, rid, nonce);
    expect(complete.status).to.equal(410);
    expect(complete.json.code).to.equal('registration_expired');
    expect((await dev.upload(device)).json.code).to.equal('device_pending_confirmation');
    const listed = JSON.parse(await dev.ok(['registration', 'list', identity, '--json']));
    expect(listed.registrations).to.deep.equal([]);
    const actions = (await dev.auditActions(identity)).map((e) => e.action);
    expect(actions.filter((a) => a === 'registration.expired')).to.have.length(1);
  });

  it('answers a status poll that comes too fast with 429 slow_down and Retry-After', async () => {
    const identity = uniqueName('eager');
    const psk = await dev.confirmingIdentity(identity);
    const device = dev.device();
    const { rid } = (await dev.bind(device, psk)).json;
    const first = await dev.status(device, rid);
    expect(first.status, first.text).to.equal(200);
    const second = await dev.status(device, rid);
    expect(second.status, second.text).to.equal(429);
    expect(second.json.code).to.equal('slow_down');
    expect(Number(second.headers['retry-after'])).to.be.within(1, 60);
    // The limit is per device: another device polls freely.
    const other = dev.device();
    const otherRid = (await dev.bind(other, psk)).json.rid;
    expect((await dev.status(other, otherRid)).status).to.equal(200);
  });
});
