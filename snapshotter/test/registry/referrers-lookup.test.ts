/**
 * Issue 15, deliverable 4 (pull latency): a cold node's first index look-up lists the image's
 * referrers. On a registry without the referrers API (docker-registry 2.x) the tag fallback is
 * asked beside the API, not after its 404; a registry known to answer the API is not asked for the
 * tag; the tag's answer is used only after a 404.
 */
import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { RegistryClient } from '../../src/registry/index.js';
import { MEDIA_TYPE_OCI_INDEX } from '../../src/registry/media-types.js';
import { faultServer } from './fault-server.js';

const SUBJECT = `sha256:${createHash('sha256').update('subject').digest('hex')}`;
const TAG_PATH = `/v2/lib/app/manifests/sha256-${SUBJECT.slice('sha256:'.length)}`;
const API_PATH = `/v2/lib/app/referrers/${SUBJECT}`;
const TYPE = 'application/vnd.test.artifact';
const referrer = (n: number): Record<string, unknown> => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${String(n).repeat(64)}`, size: 100, artifactType: TYPE,
});
const indexOf = (...manifests: Array<Record<string, unknown>>): Buffer => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests }));

/** A registry that answers the API with `api` (undefined: 404) and the tag with `tag` (undefined: 404); records the order of events. */
async function registry(t: Test, o: { api?: Buffer; tag?: Buffer; apiWaitsForTag?: boolean }) {
  const events: string[] = [];
  let tagArrived!: () => void;
  const tagSeen = new Promise<void>((r) => (tagArrived = r));
  const answer = (res: import('node:http').ServerResponse, body: Buffer | undefined): void => {
    if (!body) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"NOT_FOUND"}]}');
    res.writeHead(200, { 'content-type': MEDIA_TYPE_OCI_INDEX, 'content-length': body.length }).end(body);
  };
  const srv = await faultServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === TAG_PATH) {
      events.push('tag asked');
      tagArrived();
      return answer(res, o.tag);
    }
    if (path === API_PATH) {
      events.push('api asked');
      // Waits (for the tag request, 5 s at most) before it answers: asked one after the other,
      // the tag comes only after this answer.
      const wait = o.apiWaitsForTag ? Promise.race([tagSeen, new Promise((r) => setTimeout(r, 5000))]) : Promise.resolve();
      void wait.then(() => {
        events.push('api answered');
        answer(res, o.api);
      });
      return;
    }
    res.writeHead(404).end();
  });
  const client = new RegistryClient({ retryBaseDelayMs: 5, maxRetries: 0, timeoutMs: 10_000 });
  t.teardown(async () => {
    await client.close();
    await srv.close();
  });
  return { client, repo: `${srv.host}/lib/app`, events };
}

t.test('no referrers API: the fallback tag is asked before the API has answered its 404', async (t) => {
  const { client, repo, events } = await registry(t, { tag: indexOf(referrer(1), { ...referrer(2), artifactType: 'other' }), apiWaitsForTag: true });
  const found = await client.findReferrers(repo, SUBJECT, TYPE);
  t.same(found.map((d) => d.digest), [referrer(1).digest], "the tag's list, filtered");
  t.ok(events.indexOf('tag asked') < events.indexOf('api answered'), `asked side by side (${events.join(', ')})`);
  // Still unknown to answer the API: the next look-up asks both again, side by side.
  events.length = 0;
  t.equal((await client.findReferrers(repo, SUBJECT, TYPE)).length, 1);
  t.ok(events.includes('tag asked') && events.indexOf('tag asked') < events.indexOf('api answered'), events.join(', '));
});

t.test("referrers API: its answer wins over the tag's, and once known the tag is not asked", async (t) => {
  const { client, repo, events } = await registry(t, { api: indexOf(referrer(3)), tag: indexOf(referrer(4)) });
  t.same((await client.findReferrers(repo, SUBJECT, TYPE)).map((d) => d.digest), [referrer(3).digest], 'the API answered: its list');
  events.length = 0;
  t.same((await client.findReferrers(repo, SUBJECT, TYPE)).map((d) => d.digest), [referrer(3).digest]);
  t.same(events, ['api asked', 'api answered'], 'no tag request once the registry answered the API');
});

t.test('neither the API nor the tag: no referrers', async (t) => {
  const { client, repo } = await registry(t, {});
  t.same(await client.findReferrers(repo, SUBJECT, TYPE), []);
});
