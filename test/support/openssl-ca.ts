import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { certificateRequest, openssl, selfSignedCertificate } from './openssl-cli.js';

const ROOT_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign';

/** A CA hierarchy made with the plain openssl CLI: root, intermediates, devices, CRLs. */
export class OpensslPki {
  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  private run(args: string[]): void {
    openssl(args, this.dir);
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  /** A self-signed root CA (its CN is `cn`, by default its name). */
  root(name: string, ext = ROOT_EXT, cn = name): void {
    fs.writeFileSync(this.file(`${name}.ext`), `${ext}\n`);
    selfSignedCertificate({
      keyFile: `${name}.key`,
      certFile: `${name}.crt`,
      subject: `/CN=${cn}`,
      days: 3650,
      more: ['-extensions', 'v3', '-config', this.config(name, ext)],
      cwd: this.dir,
    });
  }

  /**
   * The root `name` issued once more as `as`: the same key and CN, another
   * serial and validity (so another fingerprint), with `ext`.
   */
  reissueRoot(name: string, as: string, options: { serial: number; days: number; ext?: string }) {
    const subject = new X509Certificate(fs.readFileSync(this.file(`${name}.crt`))).subject;
    const cn = /^CN=(.+)$/m.exec(subject)![1]!.trim();
    this.run([
      'req',
      '-x509',
      '-new',
      '-key',
      `${name}.key`,
      '-subj',
      `/CN=${cn}`,
      '-days',
      String(options.days),
      '-set_serial',
      String(options.serial),
      '-config',
      this.config(as, options.ext ?? ROOT_EXT),
      '-extensions',
      'v3',
      '-out',
      `${as}.crt`,
    ]);
  }

  private config(name: string, ext: string): string {
    const file = this.file(`${name}.cnf`);
    fs.writeFileSync(file, `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${ext}\n`);
    return file;
  }

  /**
   * A certificate signed by `issuer`: an intermediate (ext with CA:TRUE) or a
   * device. `days` may be negative with `-not_after`-style dates via startDate/endDate.
   */
  issue(
    name: string,
    issuer: string,
    options: { cn?: string; ext?: string; startDate?: string; endDate?: string } = {},
  ): void {
    const ext =
      options.ext ?? 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature';
    certificateRequest(`${name}.key`, `${name}.csr`, `/CN=${options.cn ?? name}`, this.dir);
    this.ensureCaDb(issuer);
    const args = [
      'ca',
      '-batch',
      '-config',
      this.file(`${issuer}.ca.cnf`),
      '-in',
      `${name}.csr`,
      '-out',
      `${name}.crt`,
      '-extfile',
      this.extFile(name, ext),
      '-notext',
    ];
    if (options.startDate) args.push('-startdate', options.startDate);
    if (options.endDate) args.push('-enddate', options.endDate);
    else args.push('-days', '365');
    this.run(args);
  }

  private extFile(name: string, ext: string): string {
    const file = this.file(`${name}.ext`);
    fs.writeFileSync(file, `${ext}\n`);
    return file;
  }

  private ensureCaDb(ca: string): void {
    const cnf = this.file(`${ca}.ca.cnf`);
    if (fs.existsSync(cnf)) return;
    fs.writeFileSync(this.file(`${ca}.index`), '');
    fs.writeFileSync(
      cnf,
      [
        '[ca]',
        'default_ca=own',
        '[own]',
        `database=${this.file(`${ca}.index`)}`,
        `new_certs_dir=${this.dir}`,
        `certificate=${this.file(`${ca}.crt`)}`,
        `private_key=${this.file(`${ca}.key`)}`,
        `serial=${this.file(`${ca}.serial`)}`,
        'rand_serial=yes',
        'default_md=sha256',
        'default_crl_days=30',
        'policy=any',
        'unique_subject=no',
        'email_in_dn=no',
        '[any]',
        'commonName=supplied',
        '',
      ].join('\n'),
    );
  }

  revoke(name: string, issuer: string): void {
    this.ensureCaDb(issuer);
    this.run(['ca', '-config', this.file(`${issuer}.ca.cnf`), '-revoke', `${name}.crt`]);
  }

  crl(issuer: string): string {
    this.ensureCaDb(issuer);
    this.run(['ca', '-config', this.file(`${issuer}.ca.cnf`), '-gencrl', '-out', `${issuer}.crl`]);
    return this.file(`${issuer}.crl`);
  }

  /** A file with the leaf followed by the given intermediates, as a device sends them. */
  chainFile(leaf: string, intermediates: string[]): string {
    const file = this.file(`${leaf}.chain.pem`);
    fs.writeFileSync(
      file,
      [leaf, ...intermediates].map((n) => fs.readFileSync(this.file(`${n}.crt`), 'utf8')).join(''),
    );
    return file;
  }
}
