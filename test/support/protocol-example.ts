/**
 * The upload from the protocol document (../shared/seeds/002), byte for byte
 * except for two things the document's formatting broke: its Content-Type and
 * Content-Disposition headers are wrapped across lines, and HTTP multipart
 * needs CRLF line ends. The boundary is the one its delimiter lines use.
 */
export const PROTOCOL_BOUNDARY = '---9051914041544843365972754266';

export const PROTOCOL_POINTS = [
  '1526292559214,95',
  '1526292559839,96',
  '1526292560397,95',
  '1526292560919,97',
  '1526292561361,98',
  '1526292561911,95',
  '1526292562392,94',
];

export const PROTOCOL_BODY = [
  '-----9051914041544843365972754266',
  'Content-Disposition: form-data; name="hr_measurement"; filename="hr_measurement_2018_05_01"',
  'Content-Type: text/plain',
  '',
  ...PROTOCOL_POINTS,
  '',
  '-----9051914041544843365972754266--',
  '',
].join('\r\n');

export const PROTOCOL_CONTENT_TYPE = `multipart/form-data; boundary=${PROTOCOL_BOUNDARY}`;
