import t from 'tap';
import { StartTraceReader } from '../../src/remote/start-trace-reader.js';
import { fastPathReader, plainReader } from './fast-path-reader.js';
import type { StartTraces } from '../../src/telemetry/index.js';

t.test("the start-trace reader forwards its reader's fast paths only while no start trace is open", async (t) => {
  const inner = fastPathReader();
  let open = false;
  const starts = { openTrace: () => (open ? {} : undefined) } as unknown as StartTraces;
  const r = new StartTraceReader(inner, starts, 'img');
  t.equal(r.readNow?.(Buffer.alloc(10), 0, 10, 0), 10, 'no trace open: readNow forwarded');
  t.equal(r.diskRange?.(100, 10)?.position, 100, 'no trace open: diskRange forwarded');
  open = true;
  t.equal(r.readNow?.(Buffer.alloc(10), 0, 10, 0), 0, 'a trace open: readNow serves nothing (the traced read does)');
  t.equal(r.diskRange?.(100, 10), undefined, 'a trace open: no file range');
  const plain = new StartTraceReader(plainReader(), starts, 'img');
  t.equal(plain.readNow, undefined, 'a reader without fast paths: none forwarded');
  t.equal(plain.diskRange, undefined);
});
