import crypto from 'node:crypto';
import { Readable } from 'node:stream';

/** `count` lines `epoch_ms,value` from `startMs`, `stepMs` apart. */
export function csvLines(startMs: number, count: number, stepMs = 1000): string {
  const lines = new Array<string>(count);
  for (let i = 0; i < count; i++) lines[i] = `${startMs + i * stepMs},${(i % 2000) / 10}\n`;
  return lines.join('');
}

export interface Body {
  contentType: string;
  body: Buffer;
}

export function multipartBody(series: string, csv: string): Body {
  const boundary = `----bench${crypto.randomBytes(8).toString('hex')}`;
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="${series}"; filename="${series}.csv"\r\nContent-Type: text/csv\r\n\r\n`;
  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    body: Buffer.from(`${head}${csv}\r\n--${boundary}--\r\n`),
  };
}

/**
 * A multipart upload of about `bytes` bytes generated while it is sent, so
 * the client never holds it either: one part, lines 10 ms apart.
 */
export function streamedUpload(
  series: string,
  bytes: number,
  startMs: number,
): { contentType: string; stream: Readable; points: () => number } {
  const boundary = `----bench${crypto.randomBytes(8).toString('hex')}`;
  let points = 0;
  async function* generate() {
    yield Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${series}"; filename="${series}.csv"\r\n\r\n`,
    );
    let sent = 0;
    while (sent < bytes) {
      const csv = csvLines(startMs + points * 10, 4000, 10);
      points += 4000;
      sent += csv.length;
      yield Buffer.from(csv);
    }
    yield Buffer.from(`\r\n--${boundary}--\r\n`);
  }
  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    stream: Readable.from(generate(), { objectMode: false }),
    points: () => points,
  };
}
