/**
 * The header grammar of multipart/form-data uploads: the request's
 * Content-Type (its boundary) and each part's Content-Disposition,
 * Content-Type and Content-Transfer-Encoding. Pure functions on strings; a
 * value that cannot be read exactly is refused, never guessed at, except
 * where a reading cannot lose anything (see the README, "What is refused").
 */

/** A header value's parameters, lowercased names; a name given twice is refused. */
export type Params = Map<string, string>;

export class HeaderSyntaxError extends Error {}

const WSP = new Set([' ', '\t']);
/** RFC 2045 token characters. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 2046 §5.1.1: boundary := 0*69<bchars> bcharsnospace. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;

/**
 * Reads `type; a=b; c="d"`. Quoted values take `\"` and `\\` as escapes; a
 * backslash before anything else is kept (Windows paths in filenames). A quote
 * closes a value only when `;` or the end of the header follows (after
 * optional blanks): an unescaped quote inside a filename, as old browsers
 * send, is part of the value. Unquoted values run to the next `;` and are
 * trimmed, so `filename=my file.csv` reads as "my file.csv". Anything else
 * after a value (`name="a" junk`) is refused.
 */
export function parseHeaderValue(value: string): { type: string; params: Params } {
  let i = skipWsp(value, 0);
  const typeStart = i;
  while (i < value.length && value[i] !== ';' && !WSP.has(value[i]!)) i++;
  const type = value.slice(typeStart, i).toLowerCase();
  if (type !== '' && !TOKEN.test(type.replace('/', ''))) {
    throw new HeaderSyntaxError(`"${clip(type)}" is not a valid type`);
  }
  const params: Params = new Map();
  for (;;) {
    i = skipWsp(value, i);
    if (i >= value.length) return { type, params };
    if (value[i] !== ';') {
      throw new HeaderSyntaxError(`unexpected "${clip(value.slice(i))}" after a parameter`);
    }
    i = skipWsp(value, i + 1);
    if (i >= value.length || value[i] === ';') continue; // empty parameter: nothing to lose
    const nameStart = i;
    while (i < value.length && value[i] !== '=' && value[i] !== ';' && !WSP.has(value[i]!)) i++;
    const name = value.slice(nameStart, i).toLowerCase();
    if (!TOKEN.test(name)) throw new HeaderSyntaxError(`"${clip(name)}" is not a parameter name`);
    i = skipWsp(value, i);
    if (value[i] !== '=') throw new HeaderSyntaxError(`parameter "${name}" has no value`);
    i = skipWsp(value, i + 1);
    let parsed: string;
    if (value[i] === '"') {
      [parsed, i] = quotedValue(value, i + 1, name);
    } else {
      const start = i;
      while (i < value.length && value[i] !== ';') {
        if (value[i] === '"') {
          throw new HeaderSyntaxError(`parameter "${name}" has a quote inside an unquoted value`);
        }
        i++;
      }
      parsed = value.slice(start, i).trim();
    }
    if (params.has(name)) throw new HeaderSyntaxError(`parameter "${name}" is given twice`);
    params.set(name, parsed);
  }
}

function quotedValue(value: string, i: number, name: string): [string, number] {
  let out = '';
  let lastQuote = -1;
  for (; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && (value[i + 1] === '"' || value[i + 1] === '\\')) {
      out += value[++i];
    } else if (c === '"') {
      const after = skipWsp(value, i + 1);
      if (after >= value.length || value[after] === ';') return [out, i + 1];
      lastQuote = i;
      out += c;
    } else {
      out += c;
    }
  }
  if (lastQuote >= 0) {
    throw new HeaderSyntaxError(
      `unexpected "${clip(value.slice(lastQuote + 1).trim())}" after the quoted value of parameter "${name}"`,
    );
  }
  throw new HeaderSyntaxError(`parameter "${name}" has an unterminated quoted value`);
}

function skipWsp(value: string, i: number): number {
  while (i < value.length && WSP.has(value[i]!)) i++;
  return i;
}

const clip = (s: string) => (s.length > 40 ? `${s.slice(0, 40)}…` : s);

/** The boundary of a `multipart/form-data` Content-Type, quoted or not (`/` and `=` included). */
export function boundaryOf(contentType: string | undefined): string {
  const { type, params } = parseHeaderValue(contentType ?? '');
  if (type !== 'multipart/form-data') {
    throw new HeaderSyntaxError(`Content-Type is "${clip(type)}", not multipart/form-data`);
  }
  const boundary = params.get('boundary');
  if (boundary === undefined) throw new HeaderSyntaxError('Content-Type has no boundary');
  if (!BOUNDARY.test(boundary)) {
    throw new HeaderSyntaxError(
      `boundary "${clip(boundary)}" is not 1-70 characters of A-Z a-z 0-9 ' ( ) + _ , - . / : = ? and inner spaces`,
    );
  }
  return boundary;
}

export interface PartHead {
  name: string;
  /** Undefined for a form field (no filename parameter). */
  filename: string | undefined;
}

/**
 * What a part's headers say, or why they cannot be used. Only
 * `Content-Disposition: form-data` with a `name` is accepted; a part must
 * not be multipart itself nor carry a transfer encoding other than the
 * identity ones (RFC 7578 §4.7 deprecates them; HTTP is 8-bit clean).
 */
export function readPartHead(headers: Map<string, string>): PartHead {
  const disposition = headers.get('content-disposition');
  if (disposition === undefined) throw new HeaderSyntaxError('it has no Content-Disposition');
  let parsed;
  try {
    parsed = parseHeaderValue(disposition);
  } catch (err) {
    throw new HeaderSyntaxError(`its Content-Disposition is unreadable: ${(err as Error).message}`);
  }
  const { type, params } = parsed;
  if (type !== 'form-data') {
    throw new HeaderSyntaxError(
      `its Content-Disposition is "${clip(type || disposition)}", not form-data`,
    );
  }
  if (params.has('name*')) {
    throw new HeaderSyntaxError('its Content-Disposition uses name*; send the series as name');
  }
  const name = params.get('name');
  if (name === undefined) throw new HeaderSyntaxError('its Content-Disposition has no name');
  const extended = params.get('filename*');
  const plain = params.get('filename');
  const filename = extended !== undefined ? decodeExtended(extended) : plain;

  const encoding = headers.get('content-transfer-encoding')?.trim().toLowerCase();
  if (encoding !== undefined && !['7bit', '8bit', 'binary'].includes(encoding)) {
    throw new TransferEncodingError(encoding);
  }
  const contentType = headers.get('content-type')?.trim().toLowerCase();
  if (contentType?.startsWith('multipart/')) {
    throw new HeaderSyntaxError('it is itself multipart; send one file part per series');
  }
  return { name: utf8(name), filename: filename === undefined ? undefined : utf8(filename) };
}

export class TransferEncodingError extends Error {
  constructor(readonly encoding: string) {
    super(
      `Content-Transfer-Encoding "${clip(encoding)}" is not supported; send the file as is (binary)`,
    );
  }
}

/** RFC 8187 `charset'lang'%xx`: informative only, so a value that does not decode is kept. */
function decodeExtended(value: string): string {
  const match = /^([^']*)'[^']*'(.*)$/.exec(value);
  if (!match) return value;
  try {
    return Buffer.from(decodeURIComponent(match[2]!), 'utf8').toString('latin1');
  } catch {
    return value;
  }
}

/** Header bytes are read as latin1 (one char per byte); names and filenames are UTF-8. */
const utf8 = (latin1: string) => Buffer.from(latin1, 'latin1').toString('utf8');
