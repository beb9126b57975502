import fs from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { AppError } from '../../src/http/app-error.js';
import { forwardedCertificate } from '../../src/proxy/forwarded-certificate.js';
import { renderNginxConfig } from '../../src/proxy/nginx-config.js';
import { ensureDevServerCertificates } from '../../src/tls/dev-certificates.js';
import { TLS12_AEAD_CIPHERS, TLS13_CIPHERSUITES } from '../../src/tls/tls-policy.js';
import { newDevice } from '../support/device-client.js';

const base = { FLEETGATE_DATA_DIR: '/tmp/fg-unit/data', FLEETGATE_CERTS_DIR: '/tmp/fg-unit/certs' };

/** A stand-in request: only the headers and the connection are read. */
function fakeRequest(socket: Socket, values: string[] | undefined): IncomingMessage {
  return {
    socket,
    headersDistinct: values ? { 'x-ssl-client-cert': values } : {},
  } as unknown as IncomingMessage;
}

describe('proxy mode configuration', () => {
  it('is off by default and listens as before', () => {
    const config = loadConfig(base);
    expect(config.proxy).to.include({ mode: 'off', certHeader: 'x-ssl-client-cert' });
    expect(config).to.include({ port: 8443, host: '0.0.0.0' });
  });

  it('behind nginx defaults to loopback port 8081 and trusts only loopback', () => {
    const config = loadConfig({ ...base, FLEETGATE_PROXY_MODE: 'nginx' });
    expect(config).to.include({ port: 8081, host: '127.0.0.1' });
    expect(config.proxy.trustedProxies).to.deep.equal(['127.0.0.1', '::1']);
  });

  it('reads the proxy list, the header name and the socket', () => {
    const config = loadConfig({
      ...base,
      FLEETGATE_PROXY_MODE: 'nginx',
      FLEETGATE_TRUSTED_PROXIES: ' 127.0.0.1 , 10.0.0.0/8,fd00::/8 ',
      FLEETGATE_CLIENT_CERT_HEADER: 'X-Client-Cert',
      FLEETGATE_LISTEN_SOCKET: 'run/app.sock',
    });
    expect(config.proxy.trustedProxies).to.deep.equal(['127.0.0.1', '10.0.0.0/8', 'fd00::/8']);
    expect(config.proxy.certHeader).to.equal('x-client-cert');
    expect(config.proxy.listenSocket).to.match(/^\/.*\/run\/app\.sock$/);
  });

  for (const [what, env] of [
    ['an unknown mode', { FLEETGATE_PROXY_MODE: 'traefik' }],
    ['a host name as proxy', { FLEETGATE_PROXY_MODE: 'nginx', FLEETGATE_TRUSTED_PROXIES: 'nginx' }],
    ['a bad CIDR', { FLEETGATE_PROXY_MODE: 'nginx', FLEETGATE_TRUSTED_PROXIES: '10.0.0.0/33' }],
    ['a bad header name', { FLEETGATE_PROXY_MODE: 'nginx', FLEETGATE_CLIENT_CERT_HEADER: 'a b' }],
    ['a socket in direct mode', { FLEETGATE_LISTEN_SOCKET: '/tmp/x.sock' }],
    ['a public address behind nginx', { FLEETGATE_PROXY_MODE: 'nginx', FLEETGATE_HOST: '0.0.0.0' }],
  ] as const) {
    it(`refuses ${what}`, () => {
      expect(() => loadConfig({ ...base, ...env })).to.throw(ConfigError);
    });
  }
});

describe('forwarded certificate header', () => {
  const device = newDevice();
  const other = newDevice();

  it('is no certificate when absent and the certificate when present', () => {
    const socket = new Socket();
    expect(forwardedCertificate(fakeRequest(socket, undefined), 'x-ssl-client-cert')).to.equal(
      null,
    );
    const header = encodeURIComponent(device.certPem);
    const info = forwardedCertificate(fakeRequest(socket, [header]), 'x-ssl-client-cert');
    expect(info?.fingerprint).to.equal(device.fingerprint);
  });

  it('follows the header, not the connection, when devices share one upstream connection', () => {
    const socket = new Socket();
    for (const current of [device, other, device, other]) {
      const header = encodeURIComponent(current.certPem);
      const info = forwardedCertificate(fakeRequest(socket, [header]), 'x-ssl-client-cert');
      expect(info?.fingerprint).to.equal(current.fingerprint);
    }
  });

  it('is a 400 AppError, never a crash, for anything else', () => {
    const socket = new Socket();
    for (const values of [[''], ['%'], ['x'], ['a', 'b'], ['A'.repeat(17_000)]]) {
      expect(() => forwardedCertificate(fakeRequest(socket, values), 'x-ssl-client-cert'))
        .to.throw(AppError)
        .with.property('status', 400);
    }
  });
});

describe('nginx configuration rendering', () => {
  const proxied = loadConfig({
    ...base,
    FLEETGATE_PROXY_MODE: 'nginx',
    FLEETGATE_LISTEN_SOCKET: '/run/fleetgate/app.sock',
    FLEETGATE_MAX_UPLOAD_BYTES: '12345678',
    FLEETGATE_TLS_CERT: '/etc/fg/server.crt',
    FLEETGATE_TLS_KEY: '/etc/fg/server.key',
  });

  it("takes the upstream, the limits and the header from the app's settings", () => {
    const conf = renderNginxConfig(proxied, { listen: '443', prefix: '/var/lib/fg-nginx' });
    expect(conf).to.include('server unix:/run/fleetgate/app.sock;');
    expect(conf).to.include('client_max_body_size 12345678;');
    expect(conf).to.include('proxy_set_header x-ssl-client-cert $ssl_client_escaped_cert;');
    expect(conf).to.include('ssl_protocols TLSv1.2 TLSv1.3;');
    expect(conf).to.include('ssl_verify_client optional_no_ca;');
    expect(conf).to.include('proxy_request_buffering off;');
    expect(conf).to.include('ssl_certificate /etc/fg/server.crt;');
    expect(conf).to.not.match(/\{\{/);
  });

  it('writes the device CAs to the prefix for nginx to verify chains with, and their digest', () => {
    const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'fg-nginx-cas-'));
    try {
      const none = renderNginxConfig(proxied, { listen: '443', prefix });
      expect(none).to.not.include('ssl_client_certificate');
      expect(none).to.include('proxy_set_header x-client-trust-anchors none;');
      const ca = ensureDevServerCertificates(path.join(prefix, 'certs'));
      const pem = fs.readFileSync(ca.caPath, 'utf8');
      const digest = 'ab'.repeat(32);
      const conf = renderNginxConfig(proxied, {
        listen: '443',
        prefix,
        deviceCas: { pem, digest },
      });
      expect(conf).to.include(`ssl_client_certificate ${path.join(prefix, 'device-cas.pem')};`);
      expect(conf).to.include('ssl_verify_depth 8;');
      expect(conf).to.include('proxy_set_header x-client-verify $ssl_client_verify;');
      expect(conf.split(`proxy_set_header x-client-trust-anchors ${digest};`)).to.have.length(3);
      expect(fs.readFileSync(path.join(prefix, 'device-cas.pem'), 'utf8')).to.equal(pem);
      expect(() =>
        renderNginxConfig(proxied, { listen: '443', prefix, deviceCas: { pem, digest: 'a; b' } }),
      ).to.throw(/cannot be used/);
    } finally {
      fs.rmSync(prefix, { recursive: true, force: true });
    }
  });

  it('balances over several nodes, one server line per --upstream, and refuses a bad one', () => {
    const conf = renderNginxConfig(proxied, {
      listen: '443',
      prefix: '/var/lib/fg-nginx',
      upstreams: ['10.0.0.1:8081', 'unix:/run/fleetgate/b.sock', '[::1]:8082'],
    });
    expect(conf).to.include(
      'server 10.0.0.1:8081;\n        server unix:/run/fleetgate/b.sock;\n        server [::1]:8082;',
    );
    expect(conf).to.not.include('server unix:/run/fleetgate/app.sock;');
    for (const bad of ['10.0.0.1', 'unix:relative.sock', '10.0.0.1:8081;evil', 'a b:1']) {
      expect(() =>
        renderNginxConfig(proxied, { listen: '443', prefix: '/x', upstreams: [bad] }),
      ).to.throw(/--upstream/);
    }
  });

  it('renders both certificates and the same TLS policy as direct mode', () => {
    const keyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fg-nginx-keys-'));
    try {
      const config = loadConfig({
        ...base,
        FLEETGATE_PROXY_MODE: 'nginx',
        FLEETGATE_TLS_CERT: '/etc/fg/rsa.crt',
        FLEETGATE_TLS_KEY: '/etc/fg/rsa.key',
        FLEETGATE_TLS_CERT_2: '/etc/fg/ecdsa.crt',
        FLEETGATE_TLS_KEY_2: '/etc/fg/ecdsa.key',
        FLEETGATE_TLS_SESSION_CACHE_SIZE: '2560',
        FLEETGATE_TLS_SESSION_LIFETIME_SECONDS: '7200',
        FLEETGATE_TLS_TICKET_KEY_DIR: keyDir,
      });
      const conf = renderNginxConfig(config, { listen: '443', prefix: '/x' });
      expect(conf).to.include('ssl_certificate /etc/fg/rsa.crt;');
      expect(conf).to.include('ssl_certificate_key /etc/fg/rsa.key;');
      expect(conf).to.include('ssl_certificate /etc/fg/ecdsa.crt;');
      expect(conf).to.include('ssl_certificate_key /etc/fg/ecdsa.key;');
      expect(conf).to.include(`ssl_ciphers ${TLS12_AEAD_CIPHERS.join(':')};`);
      expect(conf).to.include('ECDHE-ECDSA-AES128-CCM8');
      expect(conf).to.include(`ssl_conf_command Ciphersuites ${TLS13_CIPHERSUITES.join(':')};`);
      expect(conf).to.include('TLS_AES_128_CCM_8_SHA256');
      expect(conf).to.include('ssl_session_cache shared:fleetgate_tls:10m;');
      expect(conf).to.include('ssl_session_timeout 7200s;');
      expect(conf).to.include('ssl_session_tickets on;');
      expect(conf).to.include(`ssl_session_ticket_key ${keyDir}/current.key;`);
      expect(conf).to.include(`ssl_session_ticket_key ${keyDir}/previous.key;`);
      expect(fs.statSync(path.join(keyDir, 'current.key')).size).to.equal(48);
      expect(fs.statSync(path.join(keyDir, 'previous.key')).mode & 0o777).to.equal(0o600);
      const legacy = renderNginxConfig(
        loadConfig({
          ...base,
          FLEETGATE_PROXY_MODE: 'nginx',
          FLEETGATE_TLS_PROFILE: 'legacy-cbc',
          FLEETGATE_TLS_TICKETS: 'off',
        }),
        { listen: '443', prefix: '/x' },
      );
      expect(legacy).to.include(':ECDHE-RSA-AES128-SHA;');
      expect(legacy).to.include('ssl_session_tickets off;');
      expect(legacy).to.include(`ssl_certificate ${base.FLEETGATE_CERTS_DIR}/server-ecdsa.crt;`);
    } finally {
      fs.rmSync(keyDir, { recursive: true, force: true });
    }
  });

  it('refuses to render for direct mode or with a listen value that is not a port', () => {
    expect(() => renderNginxConfig(loadConfig(base), { listen: '443', prefix: '/x' })).to.throw();
    expect(() =>
      renderNginxConfig(proxied, { listen: '443; include /etc/passwd', prefix: '/x' }),
    ).to.throw(/--listen/);
  });
});
