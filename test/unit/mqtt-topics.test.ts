import { expect } from 'chai';
import crypto from 'node:crypto';
import {
  classifyPublish,
  maySubscribe,
  responseTopic,
  topicOwner,
} from '../../src/mqtt/mqtt-topics.js';
import {
  decryptResponse,
  encryptResponse,
  parseResponseKey,
} from '../../src/mqtt/response-encryption.js';

const FP = 'a'.repeat(64);
const owner = { identity: 'acme', deviceNames: [FP, '44:8a:5b:9c:70:93'] };

/** The per-device ACL of issue 13 (seed 001): what a device may publish and subscribe to. */
describe('MQTT topics and ACL', () => {
  it('classifies the device own REQ and state topics, by fingerprint or name', () => {
    expect(classifyPublish(owner, `acme/req/${FP}/points`)).to.deep.equal({
      kind: 'request',
      endpoint: 'points',
      device: FP,
    });
    expect(classifyPublish(owner, 'acme/req/44:8a:5b:9c:70:93/time')).to.deep.include({
      endpoint: 'time',
    });
    expect(classifyPublish(owner, `devices/out/acme/${FP}/state`)).to.deep.equal({
      kind: 'state',
      device: FP,
    });
  });

  it('denies every other publish', () => {
    for (const topic of [
      `acme/res/${FP}/points`,
      `other/req/${FP}/points`,
      `acme/req/${'b'.repeat(64)}/points`,
      `acme/req/${FP}/`,
      `acme/req/${FP}/points/extra`,
      `acme/req/${FP}`,
      `devices/out/other/${FP}/state`,
      `devices/out/acme/${FP}/status`,
      `/acme/req/${FP}/points`,
      '$SYS/broker/clients',
      '',
    ]) {
      expect(classifyPublish(owner, topic), topic).to.equal(null);
    }
  });

  it('lets a device subscribe to its own RES topics only', () => {
    expect(maySubscribe(owner, `acme/res/${FP}/+`)).to.equal(true);
    expect(maySubscribe(owner, `acme/res/${FP}/points`)).to.equal(true);
    expect(maySubscribe(owner, 'acme/res/44:8a:5b:9c:70:93/+')).to.equal(true);
    for (const filter of [
      '#',
      '+/#',
      `acme/res/${FP}/#`,
      'acme/res/+/+',
      '+/res/+/+',
      `acme/+/${FP}/+`,
      `acme/req/${FP}/+`,
      `other/res/${FP}/+`,
      `acme/res/${FP}/+/+`,
      `acme/res/${FP}/po#`,
      `acme/res/${FP}/`,
      '$SYS/#',
      `$share/g/acme/res/${FP}/+`,
      `devices/out/acme/${FP}/state`,
    ]) {
      expect(maySubscribe(owner, filter), filter).to.equal(false);
    }
    expect(responseTopic(owner, FP, 'time')).to.equal(`acme/res/${FP}/time`);
  });

  it('encrypts answers with AES-256-GCM: nonce, ciphertext, tag in base64', () => {
    const key = crypto.randomBytes(32);
    const data = encryptResponse(key, { stored: 2 });
    const raw = Buffer.from(data, 'base64');
    expect(raw.length).to.equal(12 + JSON.stringify({ stored: 2 }).length + 16);
    expect(decryptResponse(key, data)).to.deep.equal({ stored: 2 });
    // Another nonce every time.
    expect(encryptResponse(key, { stored: 2 })).to.not.equal(data);
    const tampered = Buffer.from(raw);
    tampered[14]! ^= 1;
    expect(() => decryptResponse(key, tampered.toString('base64'))).to.throw();
    expect(parseResponseKey(key.toString('base64'))).to.deep.equal(key);
    expect(parseResponseKey(undefined)).to.equal(undefined);
    for (const bad of ['', 'short', crypto.randomBytes(16).toString('base64'), 42, null]) {
      expect(() => parseResponseKey(bad), String(bad)).to.throw(/base64 of 32 bytes/);
    }
  });
});

describe('MQTT subscribe ACL and names that are wildcards', () => {
  it('refuses a wildcard in the device or identity level even when a name is literally + or #', () => {
    for (const name of ['+', '#', 'a+b', 'x#']) {
      const owner = { identity: 'acme', deviceNames: ['f'.repeat(64), name] };
      expect(maySubscribe(owner, `acme/res/${name}/+`), name).to.equal(false);
      expect(maySubscribe(owner, `acme/res/${name}/points`), name).to.equal(false);
      expect(maySubscribe(owner, `acme/res/${'f'.repeat(64)}/+`), name).to.equal(true);
    }
    expect(maySubscribe({ identity: '+', deviceNames: ['d'] }, '+/res/d/+')).to.equal(false);
  });
});

// mosquitto test/broker 02-subscribe-invalid-utf8, 03-publish-invalid-utf8 and
// 07-will-invalid-utf8 (MQTT 3.1.1 §1.5.3): a topic with U+0000, or ill-formed
// UTF-8 (decoded as U+FFFD), is never a device's topic.
describe('MQTT topics with NUL or ill-formed UTF-8', () => {
  it('are outside the ACL for publish, will and subscribe', () => {
    for (const bad of ['\u0000', '\ufffd']) {
      expect(classifyPublish(owner, `acme/req/${FP}/points${bad}x`), 'req').to.equal(null);
      expect(classifyPublish(owner, `devices/out/acme/${FP}/state${bad}`), 'state').to.equal(null);
      expect(maySubscribe(owner, `acme/res/${FP}/points${bad}`), 'sub').to.equal(false);
    }
    expect(classifyPublish(owner, `acme/req/${FP}/points`)).to.deep.equal({
      kind: 'request',
      endpoint: 'points',
      device: FP,
    });
  });
});

// Our own ACL rule, in the spirit of aedes test/auth.js (one client's grants never
// cover another's topics): a CN written as a fingerprint is not a topic name.
describe('MQTT topic owner', () => {
  it('drops names that have the form of a fingerprint, so a CN cannot be another device', () => {
    const other = 'b'.repeat(64);
    const mine = topicOwner('acme', FP, [other, other.toUpperCase(), 'sensor-1']);
    expect(mine.deviceNames).to.deep.equal([FP, 'sensor-1']);
    expect(maySubscribe(mine, `acme/res/${other}/+`)).to.equal(false);
    expect(classifyPublish(mine, `acme/req/${other}/points`)).to.equal(null);
    expect(maySubscribe(mine, `acme/res/${FP}/+`)).to.equal(true);
  });
});
