/**
 * MAC addresses as device names: `44:8A:5B:9C:70:93`, `448a5b9c7093` and
 * `44-8a-5b-9c-70-93` all become `44:8a:5b:9c:70:93`.
 */
const FORMS = [
  /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i,
  /^([0-9a-f]{2})-([0-9a-f]{2})-([0-9a-f]{2})-([0-9a-f]{2})-([0-9a-f]{2})-([0-9a-f]{2})$/i,
  /^([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i,
];

export function normaliseMac(text: string): string | null {
  for (const form of FORMS) {
    const m = form.exec(text);
    if (m) return m.slice(1, 7).join(':').toLowerCase();
  }
  return null;
}

export class MacFileError extends Error {
  constructor(readonly problems: { line: number; text: string }[]) {
    super(
      problems
        .slice(0, 20)
        .map((p) => `line ${p.line}: "${p.text}" is not a MAC address (like 44:8a:5b:9c:70:93)`)
        .join('; ') + (problems.length > 20 ? `; and ${problems.length - 20} more` : ''),
    );
    this.name = 'MacFileError';
  }
}

/**
 * One MAC per line; blank lines and `#` comments are skipped, repeats count
 * once. Any bad line fails the whole file, each reported with its number.
 */
export function parseMacFile(content: string): string[] {
  const seen = new Set<string>();
  const problems: { line: number; text: string }[] = [];
  content.split(/\r?\n/).forEach((raw, index) => {
    const text = raw.replace(/^\uFEFF/, '').trim();
    if (text === '' || text.startsWith('#')) return;
    const mac = normaliseMac(text);
    if (mac) seen.add(mac);
    else problems.push({ line: index + 1, text: text.slice(0, 64) });
  });
  if (problems.length) throw new MacFileError(problems);
  return [...seen];
}
