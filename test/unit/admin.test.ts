import { expect } from 'chai';
import {
  adminTokenMatches,
  generateAdminToken,
  hashAdminToken,
} from '../../src/admin/admin-token.service.js';
import { normaliseFingerprint } from '../../src/devices/device.service.js';
import { AppError } from '../../src/http/app-error.js';
import { loadConfig } from '../../src/config/config.js';
import { parseTime } from '../../src/series/series.service.js';
import { isLoopback } from '../../src/admin/admin-server.js';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return err instanceof AppError ? err.code : String(err);
  }
  return null;
};

describe('admin helpers', () => {
  it('reads times as epoch ms or ISO 8601, a time without a zone as UTC', () => {
    expect(parseTime('1700000000000', 'from')).to.equal(1_700_000_000_000);
    expect(parseTime('2026-01-31', 'from')).to.equal(Date.UTC(2026, 0, 31));
    expect(parseTime('2026-01-31T12:00', 'from')).to.equal(Date.UTC(2026, 0, 31, 12));
    expect(parseTime('2026-01-31T12:00:00+02:00', 'from')).to.equal(Date.UTC(2026, 0, 31, 10));
    for (const bad of ['', 'now', '-1', '1e12', '2026-13-01', '31/01/2026', '99999999999999999']) {
      expect(
        codeOf(() => parseTime(bad, 'from')),
        bad,
      ).to.equal('invalid_time');
    }
  });

  it('accepts fingerprints as we print them and as openssl prints them', () => {
    const hex = 'ab'.repeat(32);
    expect(normaliseFingerprint(hex.toUpperCase())).to.equal(hex);
    expect(normaliseFingerprint('AB:'.repeat(31) + 'AB')).to.equal(hex);
    expect(codeOf(() => normaliseFingerprint('ab'.repeat(31)))).to.equal('invalid_fingerprint');
  });

  it('compares admin tokens by hash, whatever their length', () => {
    const token = generateAdminToken();
    expect(token).to.match(/^fgadm_[A-Za-z0-9_-]{43}$/);
    const hash = hashAdminToken(token);
    expect(adminTokenMatches(token, hash)).to.equal(true);
    expect(adminTokenMatches(`${token}x`, hash)).to.equal(false);
    expect(adminTokenMatches('', hash)).to.equal(false);
  });

  it('tells loopback addresses, which get plain HTTP, from the rest', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', 'localhost'])
      expect(isLoopback(host), host).to.equal(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com'])
      expect(isLoopback(host), host).to.equal(false);
  });

  it('validates the admin settings', () => {
    expect(loadConfig({}).admin).to.deep.equal({ host: '127.0.0.1', port: 8080, token: undefined });
    expect(loadConfig({ FLEETGATE_ADMIN_PORT: 'off' }).admin.port).to.equal('off');
    expect(() => loadConfig({ FLEETGATE_ADMIN_TOKEN: 'short' })).to.throw(/FLEETGATE_ADMIN_TOKEN/);
    expect(() => loadConfig({ FLEETGATE_ADMIN_PORT: '70000' })).to.throw(/FLEETGATE_ADMIN_PORT/);
    expect(loadConfig({ FLEETGATE_ROTATION_GRACE_MS: '60000' }).rotationGraceMs).to.equal(60_000);
    expect(loadConfig({}).rotationPendingTtlMs).to.equal(900_000);
    expect(loadConfig({ FLEETGATE_ROTATION_PENDING_TTL_MS: '2000' }).rotationPendingTtlMs).to.equal(
      2000,
    );
    for (const bad of ['0', '999', '604800001', 'soon']) {
      expect(() => loadConfig({ FLEETGATE_ROTATION_PENDING_TTL_MS: bad }), bad).to.throw(
        /FLEETGATE_ROTATION_PENDING_TTL_MS/,
      );
    }
  });
});
