import { expect } from 'chai';
import fc from 'fast-check';
import {
  generatePin,
  hashPin,
  normalisePin,
  PIN_ALPHABET,
  PIN_LENGTH,
  serialLast4,
} from '../../src/registrations/registration-secrets.js';
import {
  isLegalTransition,
  nextStatus,
  REGISTRATION_STATUSES,
  type RegistrationEvent,
} from '../../src/registrations/registration-states.js';

describe('registration PINs', () => {
  it('are 8 characters of the alphabet', () => {
    for (let i = 0; i < 2000; i += 1) {
      const pin = generatePin();
      expect(pin).to.have.length(PIN_LENGTH);
      for (const c of pin) expect(PIN_ALPHABET).to.contain(c);
    }
  });

  it('use an alphabet without look-alikes and without repeats', () => {
    for (const lookAlike of '0O1IL2Z5S8BUVDQ') expect(PIN_ALPHABET).not.to.contain(lookAlike);
    expect(new Set(PIN_ALPHABET).size).to.equal(PIN_ALPHABET.length);
    expect(PIN_ALPHABET).to.equal(PIN_ALPHABET.toUpperCase());
  });

  it('use every character of the alphabet (20000 draws)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2500; i += 1) for (const c of generatePin()) seen.add(c);
    expect([...seen].sort().join('')).to.equal([...PIN_ALPHABET].sort().join(''));
  });

  it('skip the random bytes that would bias the modulo', () => {
    const n = PIN_ALPHABET.length;
    const limit = 256 - (256 % n);
    // Every byte at or above the limit is dropped; the rest map by modulo.
    const bytes = [255, limit, 0, 1, limit - 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    const pin = generatePin(() => Buffer.from(bytes));
    expect(pin).to.equal([0, 1, limit - 1, 2, 3, 4, 5, 6].map((b) => PIN_ALPHABET[b % n]).join(''));
  });

  it('draw again when a whole batch of random bytes is biased', () => {
    let calls = 0;
    const pin = generatePin((size) => {
      calls += 1;
      return Buffer.alloc(size, calls === 1 ? 255 : 3);
    });
    expect(calls).to.equal(2);
    expect(pin).to.equal(PIN_ALPHABET[3]!.repeat(PIN_LENGTH));
  });

  it('hash salted by the request id, and read as typed by an owner', () => {
    expect(
      hashPin('a'.repeat(32), 'K7MX3TQA').equals(hashPin('b'.repeat(32), 'K7MX3TQA')),
    ).to.equal(false);
    expect(
      hashPin('a'.repeat(32), 'k7mx-3tqa').equals(hashPin('a'.repeat(32), 'K7MX3TQA')),
    ).to.equal(true);
    expect(normalisePin(' k7mx 3tqa ')).to.equal('K7MX3TQA');
  });

  it('compare serial digits by their last 4, lower case, zero-padded', () => {
    expect(serialLast4('3A4F00C1BEEF')).to.equal('beef');
    expect(serialLast4('0a')).to.equal('000a');
  });
});

describe('registration state machine', () => {
  const EVENTS: RegistrationEvent[] = ['confirm', 'complete', 'expire', 'revoke'];

  it('follows the issue: confirm, then complete; expire or revoke only while pending', () => {
    expect(nextStatus('PENDING_USER_CONFIRMATION', 'confirm')).to.equal(
      'PENDING_DEVICE_COMPLETION',
    );
    expect(nextStatus('PENDING_DEVICE_COMPLETION', 'complete')).to.equal('REGISTERED');
    expect(nextStatus('PENDING_USER_CONFIRMATION', 'complete')).to.equal(null);
    expect(nextStatus('PENDING_DEVICE_COMPLETION', 'confirm')).to.equal(null);
    for (const end of ['REGISTERED', 'EXPIRED', 'REVOKED'] as const)
      for (const event of EVENTS) expect(nextStatus(end, event), `${end} ${event}`).to.equal(null);
  });

  it('only ever reaches legal states from any sequence of events', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...EVENTS), { maxLength: 20 }), (events) => {
        let status = REGISTRATION_STATUSES[0] as (typeof REGISTRATION_STATUSES)[number];
        for (const event of events) {
          const next = nextStatus(status, event);
          if (next === null) continue;
          expect(isLegalTransition(status, next)).to.equal(true);
          expect(REGISTRATION_STATUSES).to.include(next);
          status = next;
        }
      }),
    );
  });
});
