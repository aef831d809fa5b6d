/** A throwaway private CA with a server certificate for 127.0.0.1 and a client certificate (openssl). */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from './run-command.js';

export interface TestPki {
  dir: string;
  caPath: string;
  serverCertPath: string;
  serverKeyPath: string;
  clientCertPath: string;
  clientKeyPath: string;
  /** The client certificate and key in one PEM file (hosts.toml `client = "…"`). */
  clientPemPath: string;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

async function leaf(dir: string, name: string, cn: string, ext: string): Promise<void> {
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, ext);
  await runCommand('openssl', ['req', ...EC, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${cn}`]);
  await runCommand('openssl', ['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'),
    '-CAcreateserial', '-days', '2', '-out', join(dir, `${name}.crt`), '-extfile', extFile]);
}

/**
 * Make the CA, a server certificate (SAN IP:127.0.0.1) and a client certificate under `dir`. Two
 * PKIs a server must tell apart need two `caName`s: a TLS server names the CAs it accepts client
 * certificates from by subject, and Go's TLS client picks its certificate by that name.
 */
export async function makeTestPki(dir: string, caName = 'clip-test-ca'): Promise<TestPki> {
  mkdirSync(dir, { recursive: true });
  await runCommand('openssl', ['req', '-x509', ...EC, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-days', '2', '-subj', `/CN=${caName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  await leaf(dir, 'server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await leaf(dir, 'client', 'clip-test-client', 'extendedKeyUsage=clientAuth\n');
  const clientPemPath = join(dir, 'client.pem');
  writeFileSync(clientPemPath, readFileSync(join(dir, 'client.crt'), 'utf8') + readFileSync(join(dir, 'client.key'), 'utf8'));
  return {
    dir, caPath: join(dir, 'ca.crt'), serverCertPath: join(dir, 'server.crt'), serverKeyPath: join(dir, 'server.key'),
    clientCertPath: join(dir, 'client.crt'), clientKeyPath: join(dir, 'client.key'), clientPemPath,
  };
}
