import t from 'tap';
import { sharedSilentLogger } from '../../src/log/index.js';
import { ClientCertificateChooser, type ProbeResult } from '../../src/registry/client-certificates.js';
import type { Endpoint } from '../../src/registry/http.js';

const pair = (n: number): { certPem: string; keyPem: string } => ({ certPem: `cert-${n}`, keyPem: `key-${n}` });

/** A chooser whose probe answers from `verdicts` (cert PEM → result) and records every probe. */
function chooser(verdicts: Record<string, ProbeResult>): { c: ClientCertificateChooser; probed: string[] } {
  const probed: string[] = [];
  const c = new ClientCertificateChooser({
    timeoutMs: 1000,
    logger: sharedSilentLogger(),
    probe: async (_ep, cert) => {
      probed.push(cert.certPem);
      return verdicts[cert.certPem] ?? 'refused';
    },
  });
  return { c, probed };
}

const ep = (certs: Array<{ certPem: string; keyPem: string }> | undefined): Endpoint => ({ scheme: 'https', host: 'reg.example', skipVerify: false, caPem: [], ...(certs ? { clientCerts: certs } : {}) });

t.test('no pair or one pair: nothing is probed', async (t) => {
  const { c, probed } = chooser({});
  t.equal(await c.choose(ep(undefined), 'k0'), undefined);
  t.same(await c.choose(ep([pair(1)]), 'k1'), pair(1));
  t.same(probed, []);
});

t.test('the first accepted pair, probed once per endpoint (also when asked concurrently), until forgotten', async (t) => {
  const { c, probed } = chooser({ 'cert-2': 'accepted', 'cert-3': 'accepted' });
  const e = ep([pair(1), pair(2), pair(3)]);
  const [a, b] = await Promise.all([c.choose(e, 'k'), c.choose(e, 'k')]);
  t.same([a, b], [pair(2), pair(2)], 'the first the server accepts, not a later one');
  t.same(await c.choose(e, 'k'), pair(2));
  t.same(probed, ['cert-1', 'cert-2'], 'pairs probed in order, once, stopping at the accepted one');
  c.forget('k');
  t.same(await c.choose(e, 'k'), pair(2));
  t.same(probed, ['cert-1', 'cert-2', 'cert-1', 'cert-2'], 'forgotten: probed again');
});

t.test('no verdict (server unreachable or untrusted) or every pair refused: the first pair, and the request reports why', async (t) => {
  const unknown = chooser({ 'cert-1': 'unknown', 'cert-2': 'accepted' });
  t.same(await unknown.c.choose(ep([pair(1), pair(2)]), 'k'), pair(1));
  t.same(unknown.probed, ['cert-1'], 'no further probes after an answer that says nothing about the certificate');
  const refused = chooser({});
  t.same(await refused.c.choose(ep([pair(1), pair(2)]), 'k'), pair(1));
  t.same(refused.probed, ['cert-1', 'cert-2']);
});
