/** Push a test blob into a test registry with the project's own registry client. */
import { RegistryClient } from '../../snapshotter/src/registry/index.js';

/** Monolithic upload of `blob` to `host/repo`; fails unless the registry stored `digest`. */
export async function pushTestBlob(host: string, repo: string, blob: Buffer, digest: string): Promise<void> {
  const client = new RegistryClient({ plainHttp: true });
  try {
    const pushed = await client.pushBlob(`${host}/${repo}`, { type: 'bytes', data: blob });
    if (pushed.digest !== digest) throw new Error(`pushed ${pushed.digest}, expected ${digest}`);
  } finally {
    await client.close();
  }
}
