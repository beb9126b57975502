import { X509Certificate } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { AdminClient } from '../support/admin-client.js';
import { newDevice, type Answer } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import {
  isLegalTransition,
  MAX_FAILED_CONFIRMATIONS,
} from '../../src/registrations/registration-states.js';
import type { RegistrationStatus } from '../../src/db/schema.js';

type Step =
  | 'bind'
  | 'status'
  | 'confirm'
  | 'confirm-wrong-pin'
  | 'confirm-wrong-serial'
  | 'complete'
  | 'complete-wrong-nonce'
  | 'upload';

const STEPS: Step[] = [
  'bind',
  'status',
  'confirm',
  'confirm-wrong-pin',
  'confirm-wrong-serial',
  'complete',
  'complete-wrong-nonce',
  'upload',
];

/** One request as the device or its owner sees it. */
interface Request {
  rid: string;
  pin: string;
  nonce: string;
}

/**
 * fast-check drives one device and its owner through random sequences of
 * binds, polls, confirmations (right and wrong) and completions over real
 * HTTPS. Every answer is checked against a model of the state machine: never
 * a 5xx, only the legal transitions, and exactly the status the model expects.
 */
describe('owner confirmation: the state machine under random sequences (fast-check)', function () {
  this.timeout(600_000);
  const fx = useFixture({
    FLEETGATE_BIND_FAILURES_PER_ADDRESS: '0',
    FLEETGATE_REGISTRATION_POLL_INTERVAL_MS: '0',
  });

  it('never answers 5xx and moves only along legal transitions', async () => {
    const admin = new AdminClient(fx().server);
    const identity = uniqueName('fuzz');
    const created = await admin.post('/v1/identities', {
      name: identity,
      requireConfirmation: true,
    });
    expect(created.status, created.text).to.equal(201);
    const psk = await admin.issuePsk(identity);
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.constantFrom(...STEPS), { minLength: 1, maxLength: 10 }),
          async (steps) => {
            const device = newDevice();
            const serial4 = new X509Certificate(device.certPem).serialNumber.slice(-4);
            const client = fx().client(device);
            const model = new Map<string, RegistrationStatus>();
            const failures = new Map<string, number>();
            let current: Request | null = null;
            let registered = false;
            const expectStatus = async (rid: string) => {
              const answer = await client.send(
                'GET',
                undefined,
                {},
                `/device_endpoint/registrations/${rid}/status`,
              );
              no5xx(answer);
              expect(answer.status).to.equal(200);
              expect(answer.json.status, `status of ${rid}`).to.equal(model.get(rid));
            };
            for (const step of steps) {
              const before = new Map(model);
              const rid = current?.rid;
              const status = rid ? model.get(rid)! : null;
              const confirm = (pin: string, serial: string) =>
                admin.post(`/v1/identities/${identity}/registrations/confirm`, {
                  pin,
                  serialLast4: serial,
                });
              const complete = (nonce: string) =>
                client.send(
                  'PUT',
                  JSON.stringify({ nonce }),
                  { 'content-type': 'application/json' },
                  `/device_endpoint/registrations/${rid}`,
                );
              let answer: Answer;
              switch (step) {
                case 'bind': {
                  answer = await client.bind(psk);
                  if (registered) {
                    expect(answer.status, answer.text).to.equal(200);
                    break;
                  }
                  expect(answer.status, answer.text).to.equal(202);
                  if (
                    rid &&
                    (status === 'PENDING_USER_CONFIRMATION' ||
                      status === 'PENDING_DEVICE_COMPLETION')
                  )
                    model.set(rid, 'REVOKED');
                  current = answer.json as Request;
                  model.set(current.rid, 'PENDING_USER_CONFIRMATION');
                  failures.set(current.rid, 0);
                  break;
                }
                case 'status':
                  if (!rid) continue;
                  answer = await client.send(
                    'GET',
                    undefined,
                    {},
                    `/device_endpoint/registrations/${rid}/status`,
                  );
                  break;
                case 'confirm':
                  if (!current) continue;
                  answer = await confirm(current.pin, serial4);
                  if (status === 'PENDING_USER_CONFIRMATION') {
                    expect(answer.status, answer.text).to.equal(200);
                    model.set(rid!, 'PENDING_DEVICE_COMPLETION');
                  } else {
                    expect(answer.status, answer.text).to.be.oneOf([400, 409]);
                  }
                  break;
                case 'confirm-wrong-pin':
                case 'confirm-wrong-serial': {
                  if (!current) continue;
                  const pin = step === 'confirm-wrong-pin' ? otherPin(current.pin) : current.pin;
                  const serial = step === 'confirm-wrong-serial' ? otherSerial(serial4) : serial4;
                  answer = await confirm(pin, serial);
                  expect(answer.status, answer.text).to.equal(400);
                  if (status === 'PENDING_USER_CONFIRMATION') {
                    const failed = failures.get(rid!)! + 1;
                    failures.set(rid!, failed);
                    if (failed >= MAX_FAILED_CONFIRMATIONS) model.set(rid!, 'REVOKED');
                  }
                  break;
                }
                case 'complete':
                  if (!current) continue;
                  answer = await complete(current.nonce);
                  if (status === 'PENDING_DEVICE_COMPLETION' || status === 'REGISTERED') {
                    expect(answer.status, answer.text).to.equal(200);
                    model.set(rid!, 'REGISTERED');
                    registered = true;
                  } else {
                    expect(answer.status, answer.text).to.equal(409);
                  }
                  break;
                case 'complete-wrong-nonce':
                  if (!current) continue;
                  answer = await complete('0'.repeat(64));
                  expect(answer.status, answer.text).to.equal(403);
                  break;
                case 'upload':
                  answer = await client.upload([{ name: 't', content: '1526292559214,95\n' }]);
                  expect(answer.status, answer.text).to.equal(registered ? 200 : 403);
                  break;
              }
              no5xx(answer);
              for (const [known, now] of model) {
                const was = before.get(known);
                if (was) expect(isLegalTransition(was, now), `${was} -> ${now}`).to.equal(true);
                await expectStatus(known);
              }
            }
          },
        ),
        { numRuns: Number(process.env.FLEETGATE_FUZZ_RUNS ?? 15) },
      );
    } finally {
      await admin.close();
    }
  });
});

function no5xx(answer: Answer): void {
  expect(answer.status, answer.text).to.be.below(500);
}

function otherPin(pin: string): string {
  return pin.startsWith('A') ? `C${pin.slice(1)}` : `A${pin.slice(1)}`;
}

function otherSerial(serial: string): string {
  return serial.toLowerCase() === 'ffff' ? '0000' : 'ffff';
}
