/**
 * Two facts about a certificate that Node's X509Certificate does not expose:
 * its X.509 version and whether it carries extensions. Read straight from the
 * DER of the TBSCertificate (RFC 5280 4.1): an optional `[0]` version, then
 * the fixed fields, then an optional `[3]` extensions block. Called only on
 * DER that OpenSSL has already parsed, so the walk can stay minimal; anything
 * unexpected yields null.
 */
export interface TbsStructure {
  /** 1, 2 or 3 (the encoded value plus one). */
  version: number;
  hasExtensions: boolean;
}

interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function readTlv(der: Buffer, offset: number): Tlv | null {
  if (offset + 2 > der.length) return null;
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const octets = length & 0x7f;
    if (octets === 0 || octets > 4 || start + octets > der.length) return null;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + der[start + i]!;
    start += octets;
  }
  const end = start + length;
  return end > der.length ? null : { tag, start, end };
}

export function tbsStructure(der: Buffer): TbsStructure | null {
  const certificate = readTlv(der, 0);
  const tbs = certificate && readTlv(der, certificate.start);
  if (!tbs || tbs.tag !== 0x30) return null;
  let version = 1;
  let hasExtensions = false;
  for (let offset = tbs.start; offset < tbs.end;) {
    const field = readTlv(der, offset);
    if (!field) return null;
    if (field.tag === 0xa0) {
      const integer = readTlv(der, field.start);
      if (!integer || integer.tag !== 0x02 || integer.end - integer.start !== 1) return null;
      version = der[integer.start]! + 1;
    }
    if (field.tag === 0xa3) hasExtensions = true;
    offset = field.end;
  }
  return { version, hasExtensions };
}
