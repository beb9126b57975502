import type { RegistrationStatus } from '../db/schema.js';

/**
 * The registration state machine, in one place. A request starts waiting for
 * its owner; the owner's PIN moves it to the device; the device's nonce ends
 * it. Until then it can expire (time) or be revoked (a newer request for the
 * certificate, too many wrong PINs). The three end states never change again.
 */
export const REGISTRATION_STATUSES = [
  'PENDING_USER_CONFIRMATION',
  'PENDING_DEVICE_COMPLETION',
  'REGISTERED',
  'EXPIRED',
  'REVOKED',
] as const satisfies readonly RegistrationStatus[];

export type RegistrationEvent = 'confirm' | 'complete' | 'expire' | 'revoke';

const TRANSITIONS: Record<
  RegistrationStatus,
  Partial<Record<RegistrationEvent, RegistrationStatus>>
> = {
  PENDING_USER_CONFIRMATION: {
    confirm: 'PENDING_DEVICE_COMPLETION',
    expire: 'EXPIRED',
    revoke: 'REVOKED',
  },
  PENDING_DEVICE_COMPLETION: { complete: 'REGISTERED', expire: 'EXPIRED', revoke: 'REVOKED' },
  REGISTERED: {},
  EXPIRED: {},
  REVOKED: {},
};

/** The state after `event`, or null when the event is not allowed in `from`. */
export function nextStatus(
  from: RegistrationStatus,
  event: RegistrationEvent,
): RegistrationStatus | null {
  return TRANSITIONS[from][event] ?? null;
}

export function isLegalTransition(from: RegistrationStatus, to: RegistrationStatus): boolean {
  return from === to || Object.values(TRANSITIONS[from]).includes(to);
}

export function isPending(status: RegistrationStatus): boolean {
  return status === 'PENDING_USER_CONFIRMATION' || status === 'PENDING_DEVICE_COMPLETION';
}

/** Wrong PINs or serials a request survives; the fifth revokes it. */
export const MAX_FAILED_CONFIRMATIONS = 5;
