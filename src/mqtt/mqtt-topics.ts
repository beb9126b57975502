/**
 * The topics of a device and what it may do with them (issue 13, seeds 000
 * and 001). `<identity>` is the identity's name; `<device>` is one of the
 * device's names (a MAC address, a certificate CN) or its certificate
 * fingerprint, all accepted. Everything not listed here is denied.
 *
 * - publish `<identity>/req/<device>/<endpoint>`: a request;
 * - publish `devices/out/<identity>/<device>/state`: the device's state;
 * - subscribe `<identity>/res/<device>/+` (or one endpoint of it): responses.
 */
export interface TopicOwner {
  identity: string;
  /** Every name the device answers to in a topic (fingerprint first). */
  deviceNames: readonly string[];
}

/**
 * The topic owner of a device connected with `fingerprint`. A name that has
 * the form of a fingerprint (64 hex digits, as a CA may write in a CN) is not
 * a topic name: it could be another device's fingerprint, and so its topics.
 */
export function topicOwner(
  identity: string,
  fingerprint: string,
  names: readonly string[],
): TopicOwner {
  const own = names.filter((name) => !/^[0-9a-fA-F]{64}$/.test(name));
  return { identity, deviceNames: [fingerprint, ...own] };
}

export type DevicePublish =
  { kind: 'request'; endpoint: string; device: string } | { kind: 'state'; device: string };

/** What a publish to `topic` is, for this device; null when it is outside the ACL. */
export function classifyPublish(owner: TopicOwner, topic: string): DevicePublish | null {
  if (!wellFormed(topic)) return null;
  const levels = topic.split('/');
  if (levels.length === 4 && levels[0] === owner.identity && levels[1] === 'req') {
    const [, , device, endpoint] = levels as [string, string, string, string];
    if (owner.deviceNames.includes(device) && endpoint.length > 0) {
      return { kind: 'request', endpoint, device };
    }
    return null;
  }
  if (
    levels.length === 5 &&
    levels[0] === 'devices' &&
    levels[1] === 'out' &&
    levels[2] === owner.identity &&
    levels[4] === 'state' &&
    owner.deviceNames.includes(levels[3]!)
  ) {
    return { kind: 'state', device: levels[3]! };
  }
  return null;
}

/**
 * Whether the device may subscribe to `filter`: its own RES topics only,
 * `<identity>/res/<device>/+` or one `<identity>/res/<device>/<endpoint>`.
 * A `#` anywhere, or a `+` in the first three levels, could match another
 * device's traffic and is refused; so are `$SYS` and shared subscriptions.
 */
export function maySubscribe(owner: TopicOwner, filter: string): boolean {
  if (!wellFormed(filter)) return false;
  const levels = filter.split('/');
  if (levels.length !== 4) return false;
  const [identity, res, device, endpoint] = levels as [string, string, string, string];
  // A device (or identity) whose name is itself `+` or `#` must not get a wildcard that way.
  if (/[+#]/.test(identity) || /[+#]/.test(device)) return false;
  if (identity !== owner.identity || res !== 'res' || !owner.deviceNames.includes(device)) {
    return false;
  }
  return endpoint === '+' || (endpoint.length > 0 && !/[+#]/.test(endpoint));
}

/** The RES topic answering a request published under `device` (the name the device used). */
export function responseTopic(owner: TopicOwner, device: string, endpoint: string): string {
  return `${owner.identity}/res/${device}/${endpoint}`;
}

/**
 * MQTT 3.1.1 §1.5.3: a topic never holds U+0000, and ill-formed UTF-8 (which
 * the packet parser turns into U+FFFD) is a protocol error. Such a topic is
 * outside the ACL: a C client would read the echoed RES topic only up to its
 * NUL, as if it answered another endpoint.
 */
function wellFormed(topic: string): boolean {
  return !topic.includes('\u0000') && !topic.includes('\ufffd');
}
