import { expect } from 'chai';
import { ConfigError, loadConfig, settingName } from '../../src/config/config.js';

/** Issue 14: configuration errors name what the operator set, never an internal path. */
describe('configuration errors name the setting', () => {
  const messageOf = (fn: () => unknown): string => {
    try {
      fn();
    } catch (err) {
      expect(err).to.be.instanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  it('names the environment variable', () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ FLEETGATE_PORT: 'http' }, 'FLEETGATE_PORT'],
      [{ FLEETGATE_ADMIN_PORT: 'eighty' }, 'FLEETGATE_ADMIN_PORT'],
      [{ FLEETGATE_MAX_UPLOAD_BYTES: '0' }, 'FLEETGATE_MAX_UPLOAD_BYTES'],
      [{ FLEETGATE_BODY_IDLE_TIMEOUT_MS: '-1' }, 'FLEETGATE_BODY_IDLE_TIMEOUT_MS'],
      [{ FLEETGATE_UPLOADS_PER_DEVICE: 'many' }, 'FLEETGATE_UPLOADS_PER_DEVICE'],
      [{ FLEETGATE_TRUSTED_PROXIES: '127.0.0.1,not-an-ip' }, 'FLEETGATE_TRUSTED_PROXIES'],
      [{ FLEETGATE_ADMIN_TOKEN: 'short' }, 'FLEETGATE_ADMIN_TOKEN'],
      [{ FLEETGATE_LOG_LEVEL: 'loud' }, 'FLEETGATE_LOG_LEVEL'],
    ];
    for (const [env, name] of cases) {
      const message = messageOf(() => loadConfig(env));
      expect(message, JSON.stringify(env)).to.include(`${name}:`);
      // No internal path such as `port:` or `limits.maxUploadBytes:`.
      expect(message).to.not.match(/(configuration: |; )[a-z][A-Za-z.0-9]*:/);
    }
  });

  it('has an operator-facing name for every setting', () => {
    // A key added to the schema without a name would be reported by its internal path.
    const leaves = (value: unknown, prefix: string): string[] =>
      value !== null && typeof value === 'object' && !Array.isArray(value)
        ? Object.entries(value).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k))
        : [prefix];
    const unnamed = leaves(loadConfig({}), '').filter((path) => settingName(path) === path);
    expect(unnamed).to.deep.equal([]);
  });

  it('names the flag when the flag gave the value', () => {
    expect(messageOf(() => loadConfig({}, { port: 'x' }))).to.include('--port:');
    expect(messageOf(() => loadConfig({}, { adminPort: 'x' }))).to.include('--admin-port:');
  });

  it('refuses a DATABASE_URL that is not PostgreSQL, saying so', () => {
    for (const url of ['mysql://root@127.0.0.1:3306/fleet', 'sqlite:///tmp/x.db', 'not a url']) {
      const message = messageOf(() => loadConfig({ DATABASE_URL: url }));
      expect(message).to.include('DATABASE_URL:');
      expect(message).to.match(/PostgreSQL|postgres:\/\//);
    }
    expect(loadConfig({ DATABASE_URL: 'postgresql://u@h/db' }).databaseUrl).to.equal(
      'postgresql://u@h/db',
    );
  });
});
