import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { parseDuration } from '../../src/psks/duration.js';
import { displayPrefixOf, generatePskSecret, hashPskSecret } from '../../src/psks/psk-secret.js';

describe('configuration', () => {
  it('has safe defaults', () => {
    const config = loadConfig({});
    expect(config.port).to.equal(8443);
    expect(config.databaseUrl).to.equal(undefined);
    expect(config.migrateOnStart).to.equal(true);
    expect(config.limits.maxUploadBytes).to.be.greaterThan(0);
    expect(Object.isFrozen(config.limits)).to.equal(true);
  });

  it('reads the environment and lets flags win', () => {
    const config = loadConfig(
      { FLEETGATE_PORT: '9000', DATABASE_URL: 'postgres://u@h/db', FLEETGATE_MAX_PARTS: '7' },
      { port: '9100', migrate: false },
    );
    expect(config.port).to.equal(9100);
    expect(config.databaseUrl).to.equal('postgres://u@h/db');
    expect(config.limits.maxParts).to.equal(7);
    expect(config.migrateOnStart).to.equal(false);
  });

  it('bounds timestamps below at 2000-01-01 and caps series per device, both configurable', () => {
    const defaults = loadConfig({});
    expect(defaults.limits.minTimestampMs).to.equal(Date.UTC(2000, 0, 1));
    expect(defaults.limits.maxSeriesPerDevice).to.equal(1000);
    const set = loadConfig({
      FLEETGATE_MIN_TIMESTAMP_MS: '0',
      FLEETGATE_MAX_SERIES_PER_DEVICE: '20000',
    });
    expect(set.limits.minTimestampMs).to.equal(0);
    expect(set.limits.maxSeriesPerDevice).to.equal(20000);
    expect(() => loadConfig({ FLEETGATE_MIN_TIMESTAMP_MS: '-1' })).to.throw(
      ConfigError,
      /FLEETGATE_MIN_TIMESTAMP_MS/,
    );
    expect(() => loadConfig({ FLEETGATE_MAX_SERIES_PER_DEVICE: '0' })).to.throw(
      ConfigError,
      /FLEETGATE_MAX_SERIES_PER_DEVICE/,
    );
  });

  it('rejects nonsense with a message naming the setting', () => {
    expect(() => loadConfig({ FLEETGATE_PORT: 'http' })).to.throw(ConfigError, /FLEETGATE_PORT/);
    expect(() => loadConfig({ FLEETGATE_MAX_PARTS: '0' })).to.throw(
      ConfigError,
      /FLEETGATE_MAX_PARTS/,
    );
    expect(() => loadConfig({ FLEETGATE_TLS_CERT: '/x.crt' })).to.throw(ConfigError, /together/);
  });
});

describe('configuration: a connection pooler in front of PostgreSQL', () => {
  it('is off unless FLEETGATE_DB_POOLER names its pool mode, and refuses anything else', () => {
    expect(loadConfig({}).dbPooler).to.equal('off');
    const pooled = loadConfig({
      FLEETGATE_DB_POOLER: 'transaction',
      FLEETGATE_DB_LISTEN_URL: 'postgres://u@db/fleet',
    });
    expect(pooled.dbPooler).to.equal('transaction');
    expect(pooled.dbListenUrl).to.equal('postgres://u@db/fleet');
    expect(() => loadConfig({ FLEETGATE_DB_POOLER: 'statement' })).to.throw(
      ConfigError,
      /FLEETGATE_DB_POOLER/,
    );
    expect(() => loadConfig({ FLEETGATE_DB_LISTEN_URL: 'redis://db' })).to.throw(
      ConfigError,
      /FLEETGATE_DB_LISTEN_URL/,
    );
  });
});

describe('PSK secrets', () => {
  it('carry 256 random bits and are stored as SHA-256', () => {
    const a = generatePskSecret();
    const b = generatePskSecret();
    expect(a).to.match(/^fgpsk_[A-Za-z0-9_-]{43}$/);
    expect(a).to.not.equal(b);
    expect(Buffer.from(a.slice(6), 'base64url')).to.have.length(32);
    expect(hashPskSecret(a)).to.have.length(32);
    expect(displayPrefixOf(a)).to.equal(a.slice(0, 12));
  });
});

describe('durations', () => {
  it('parses s, m, h, d, w and rejects the rest', () => {
    expect(parseDuration('90s')).to.equal(90_000);
    expect(parseDuration('12h')).to.equal(43_200_000);
    expect(parseDuration('2w')).to.equal(14 * 86_400_000);
    for (const bad of ['', '5', 'h', '1.5h', '-1d', '0d', '1y'])
      expect(() => parseDuration(bad), bad).to.throw();
  });
});
