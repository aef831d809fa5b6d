import t from 'tap';
import { StartTraceReader } from '../../src/remote/start-trace-reader.js';
import type { LayerReader } from '../../src/storage/index.js';
import type { StartTraces } from '../../src/telemetry/index.js';

const layer = { ref: 'r/x:1', digest: 'sha256:aa', diffId: 'sha256:bb', uncompressedSize: 1 << 20 };

t.test("the start-trace reader forwards its reader's fast paths only while no start trace is open", async (t) => {
  const inner: LayerReader = {
    layer,
    read: async () => 10,
    readNow: () => 10,
    diskRange: (offset) => ({ fd: 7, position: offset, served: () => {} }),
    check: async () => {},
    close: async () => {},
  };
  let open = false;
  const starts = { openTrace: () => (open ? {} : undefined) } as unknown as StartTraces;
  const r = new StartTraceReader(inner, starts, 'img');
  t.equal(r.readNow?.(Buffer.alloc(10), 0, 10, 0), 10, 'no trace open: readNow forwarded');
  t.equal(r.diskRange?.(100, 10)?.position, 100, 'no trace open: diskRange forwarded');
  open = true;
  t.equal(r.readNow?.(Buffer.alloc(10), 0, 10, 0), 0, 'a trace open: readNow serves nothing (the traced read does)');
  t.equal(r.diskRange?.(100, 10), undefined, 'a trace open: no file range');
  const plain = new StartTraceReader({ layer, read: async () => 0, check: async () => {}, close: async () => {} }, starts, 'img');
  t.equal(plain.readNow, undefined, 'a reader without fast paths: none forwarded');
  t.equal(plain.diskRange, undefined);
});
