import t from 'tap';
import { ClipError } from '../../src/errors/index.js';
import { RevocableReader } from '../../src/remote/revocable-reader.js';
import { fastPathReader, plainReader } from './fast-path-reader.js';

t.test("a revocable reader forwards its reader's fast paths until revoked, then every read fails", async (t) => {
  const inner = fastPathReader();
  const r = new RevocableReader(inner);
  t.equal(r.readNow?.(Buffer.alloc(10), 0, 10, 0), 10, 'readNow forwarded');
  t.equal(r.diskRange?.(100, 10)?.position, 100, 'diskRange forwarded');
  const err = new ClipError('data_corrupt', 'CLIP_INDEX_MISMATCH', 'index does not describe its layer');
  r.revoke(err);
  t.equal(r.readNow?.(Buffer.alloc(10), 0, 10, 0), 0, 'revoked: readNow serves nothing');
  t.equal(r.diskRange?.(100, 10), undefined, 'revoked: no file range');
  await t.rejects(r.read(Buffer.alloc(10), 0, 10, 0), err, 'and the read that follows fails with the quarantine error');
  const plain = new RevocableReader(plainReader());
  t.equal(plain.readNow, undefined, 'a reader without fast paths: none forwarded');
  t.equal(plain.diskRange, undefined);
});
