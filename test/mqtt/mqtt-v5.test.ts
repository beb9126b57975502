import { expect } from 'chai';
import { newDevice } from '../support/device-client.js';
import { useFixture, uniqueName } from '../support/fixture.js';
import {
  connectDevice,
  connectPacket,
  deviceTopics,
  mosquitto,
  mosquittoTlsArgs,
  rawConnection,
  waitForBytes,
} from '../support/mqtt-client.js';

/**
 * Issue 13: fleetgate's broker (aedes) speaks MQTT 3.1.1. An MQTT 5 CONNECT
 * gets the 3.1.1 CONNACK "unacceptable protocol version" (return code 0x01)
 * and the connection is closed, before the certificate is looked at; MQTT 5
 * clients report it as "unsupported protocol version".
 */
describe('MQTT channel: an MQTT 5 CONNECT is refused cleanly', function () {
  this.timeout(60_000);
  const fx = useFixture({ FLEETGATE_MQTT_PORT: '0' });

  it('answers CONNACK 0x01 on the wire and closes the connection', async () => {
    const { device } = await fx().boundDevice(uniqueName('v5-raw'));
    const connection = await rawConnection(fx(), device);
    connection.socket.write(connectPacket('v5-raw', 5));
    const bytes = await waitForBytes(connection, 4);
    // CONNACK, remaining length 2, no session present, return code 1.
    expect(bytes.toString('hex')).to.equal('20020001');
    const closed = await Promise.race([
      connection.closed.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000)),
    ]);
    expect(closed, 'closed by the server').to.equal(true);
  });

  it('MQTT.js with protocolVersion 5: "Unacceptable protocol version", bound or not', async () => {
    const { device } = await fx().boundDevice(uniqueName('v5-js'));
    for (const who of [device, newDevice()]) {
      const refused = await connectDevice(fx(), who, { protocolVersion: 5 }).then(
        async (client) => {
          await client.endAsync(true);
          return null;
        },
        (err: Error & { code?: number }) => ({ code: err.code, message: err.message }),
      );
      expect(refused).to.deep.equal({
        code: 1,
        message: 'Connection refused: Unacceptable protocol version',
      });
    }
    // The same device on MQTT 3.1.1 is welcome.
    const client = await connectDevice(fx(), device);
    expect(client.connected).to.equal(true);
    await client.endAsync();
  });

  it('mosquitto_pub -V mqttv5: "Unsupported Protocol Version", nothing published', async () => {
    const identity = uniqueName('v5-mosquitto');
    const { device } = await fx().boundDevice(identity);
    const tlsArgs = mosquittoTlsArgs(fx(), device);
    const args = (version: string) => [
      ...tlsArgs,
      '-V',
      version,
      '-q',
      '1',
      '-t',
      deviceTopics(identity, device).state,
      '-m',
      '{"status": "v5"}',
    ];
    const v5 = await mosquitto('mosquitto_pub', args('mqttv5'));
    expect(v5.code).to.not.equal(0);
    expect(v5.stderr).to.contain('Unsupported Protocol Version');
    let shown = await fx().server.cli(['device', 'show', device.fingerprint, '--json']);
    expect(JSON.parse(shown.stdout).lastState).to.equal(null);

    const v311 = await mosquitto('mosquitto_pub', args('mqttv311'));
    expect(v311.code, v311.stderr).to.equal(0);
    shown = await fx().server.cli(['device', 'show', device.fingerprint, '--json']);
    expect(JSON.parse(shown.stdout).lastState.status).to.equal('v5');
  });
});
