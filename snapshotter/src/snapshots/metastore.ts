/**
 * Persistent snapshot metadata in SQLite (WAL, synchronous=FULL): every change is one transaction,
 * so a `kill -9` leaves either the old or the new state. A change nobody outside relies on yet may
 * be written without waiting for the disk (`deferredTransaction`); the next durable transaction or
 * `flush` makes it durable too, as the WAL is one file synced as a whole. Snapshot directories are named by the
 * numeric row id; keys are opaque strings and never appear in paths.
 */
import Database from 'better-sqlite3';
import { Kind, type SnapshotInfo, type Usage } from './types.js';

/** A snapshot row as stored. */
export interface SnapshotRecord {
  id: number;
  key: string;
  parentId: number | null;
  kind: Kind;
  createdNs: bigint;
  updatedNs: bigint;
  labels: Record<string, string>;
  size: number;
  inodes: number;
  remote: boolean;
}

interface Row {
  id: number;
  key: string;
  parent_id: number | null;
  kind: number;
  created_ns: bigint;
  updated_ns: bigint;
  labels: string;
  size: number;
  inodes: number;
  remote: number;
}

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  parent_id INTEGER REFERENCES snapshots(id),
  kind INTEGER NOT NULL,
  created_ns INTEGER NOT NULL,
  updated_ns INTEGER NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}',
  size INTEGER NOT NULL DEFAULT 0,
  inodes INTEGER NOT NULL DEFAULT 0,
  remote INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
`;

let lastNs = 0n;
/**
 * Nanoseconds since the epoch with microsecond accuracy (containerd's clients compare them with
 * their own clock), strictly increasing so "updated after created" always holds.
 */
export function nowNs(): bigint {
  const wall = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
  lastNs = wall > lastNs ? wall : lastNs + 1n;
  return lastNs;
}

/**
 * The metadata database of one snapshotter root. Every row is also held in memory (write-through),
 * so Stat, List and Mounts never touch SQLite; a transaction that fails after writing reloads the
 * maps from the database, which rolled back.
 */
export class Metastore {
  #db: Database.Database;
  #insert: Database.Statement;
  #all: Database.Statement;
  #commit: Database.Statement;
  #setLabels: Database.Statement;
  #setRemote: Database.Statement;
  #setParent: Database.Statement;
  #delete: Database.Statement;
  #byId = new Map<number, SnapshotRecord>();
  #byKey = new Map<string, SnapshotRecord>();
  #children = new Map<number, number>();
  #dirty = false;
  /** False while a deferred transaction runs (synchronous=NORMAL). */
  #durable = true;
  #durableCommits = 0;
  #flushes = 0;

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.exec(SCHEMA_SQL);
    this.#insert = this.#db.prepare(
      'INSERT INTO snapshots (key, parent_id, kind, created_ns, updated_ns, labels, remote) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.#all = this.#db.prepare('SELECT * FROM snapshots ORDER BY id').safeIntegers(true);
    this.#commit = this.#db.prepare(
      'UPDATE snapshots SET key = ?, kind = ?, labels = ?, size = ?, inodes = ?, created_ns = ?, updated_ns = ? WHERE id = ?',
    );
    this.#setLabels = this.#db.prepare('UPDATE snapshots SET labels = ?, updated_ns = ? WHERE id = ?');
    this.#setRemote = this.#db.prepare('UPDATE snapshots SET remote = 1 WHERE id = ?');
    this.#setParent = this.#db.prepare('UPDATE snapshots SET parent_id = ? WHERE id = ?');
    this.#delete = this.#db.prepare('DELETE FROM snapshots WHERE id = ?');
    this.#reload();
  }

  /** Run `fn` in one write transaction: all of it commits, or none of it (also on a throw). */
  transaction<T>(fn: () => T): T {
    this.#dirty = false;
    try {
      const out = this.#db.transaction(fn).immediate();
      if (this.#dirty && this.#durable) this.#durableCommits++;
      return out;
    } catch (err) {
      if (this.#dirty) this.#reload();
      throw err;
    }
  }

  /**
   * `transaction`, without waiting for the disk: a process crash keeps it (it is in the WAL), a
   * machine crash may lose it. Only for a change the caller makes durable with a later
   * `transaction` or `flush` before anyone relies on it (one fsync instead of two).
   */
  deferredTransaction<T>(fn: () => T): T {
    this.#db.pragma('synchronous = NORMAL');
    this.#durable = false;
    try {
      return this.transaction(fn);
    } finally {
      this.#db.pragma('synchronous = FULL');
      this.#durable = true;
    }
  }

  /** Make every committed transaction durable (after `deferredTransaction`): a checkpoint syncs the WAL and the database. */
  flush(): void {
    this.#db.pragma('wal_checkpoint(FULL)');
    this.#flushes++;
  }

  /** Durable writes so far (transactions under synchronous=FULL and flushes): what the tests count. */
  get durableWrites(): number {
    return this.#durableCommits + this.#flushes;
  }

  get(key: string): SnapshotRecord | undefined {
    return this.#byKey.get(key);
  }

  getById(id: number): SnapshotRecord | undefined {
    return this.#byId.get(id);
  }

  hasChildren(id: number): boolean {
    return (this.#children.get(id) ?? 0) > 0;
  }

  /** Insert a snapshot and return its new id. */
  insert(r: Omit<SnapshotRecord, 'id' | 'size' | 'inodes'>): number {
    this.#dirty = true;
    const res = this.#insert.run(r.key, r.parentId, r.kind, r.createdNs, r.updatedNs, JSON.stringify(r.labels), r.remote ? 1 : 0);
    const id = Number(res.lastInsertRowid);
    this.#remember({ ...r, id, size: 0, inodes: 0 });
    return id;
  }

  /** Turn an active snapshot into a committed one under a new name, keeping its id. */
  commit(id: number, name: string, labels: Record<string, string>, usage: Usage, at: bigint): void {
    this.#dirty = true;
    this.#commit.run(name, Kind.Committed, JSON.stringify(labels), usage.size, usage.inodes, at, at, id);
    const r = this.#byId.get(id)!;
    this.#byKey.delete(r.key);
    this.#remember({ ...r, key: name, kind: Kind.Committed, labels, size: usage.size, inodes: usage.inodes, createdNs: at, updatedNs: at });
  }

  setLabels(id: number, labels: Record<string, string>, at: bigint): void {
    this.#dirty = true;
    this.#setLabels.run(JSON.stringify(labels), at, id);
    this.#remember({ ...this.#byId.get(id)!, labels, updatedNs: at });
  }

  setRemote(id: number): void {
    this.#dirty = true;
    this.#setRemote.run(id);
    this.#remember({ ...this.#byId.get(id)!, remote: true });
  }

  /** Give a snapshot created without a parent its parent (containerd's rebase on commit). */
  setParent(id: number, parentId: number): void {
    this.#dirty = true;
    this.#setParent.run(parentId, id);
    const r = this.#byId.get(id)!;
    if (r.parentId !== null) this.#children.set(r.parentId, (this.#children.get(r.parentId) ?? 1) - 1);
    this.#children.set(parentId, (this.#children.get(parentId) ?? 0) + 1);
    this.#remember({ ...r, parentId });
  }

  delete(id: number): void {
    this.#dirty = true;
    this.#delete.run(id);
    const r = this.#byId.get(id);
    if (!r) return;
    this.#byId.delete(id);
    this.#byKey.delete(r.key);
    if (r.parentId !== null) this.#children.set(r.parentId, (this.#children.get(r.parentId) ?? 1) - 1);
  }

  /** Every record, oldest first. */
  all(): SnapshotRecord[] {
    return [...this.#byId.values()];
  }

  /** Ancestor ids, nearest first. */
  parentIds(r: SnapshotRecord): number[] {
    const ids: number[] = [];
    for (let p = r.parentId; p !== null; p = this.#byId.get(p)?.parentId ?? null) ids.push(p);
    return ids;
  }

  /** containerd's view of a record: the parent is named, not numbered. */
  info(r: SnapshotRecord): SnapshotInfo {
    return {
      name: r.key,
      parent: r.parentId === null ? '' : (this.#byId.get(r.parentId)?.key ?? ''),
      kind: r.kind,
      createdNs: r.createdNs,
      updatedNs: r.updatedNs,
      labels: r.labels,
    };
  }

  close(): void {
    this.#db.close();
  }

  #remember(r: SnapshotRecord): void {
    const known = this.#byId.has(r.id);
    this.#byId.set(r.id, r);
    this.#byKey.set(r.key, r);
    if (!known && r.parentId !== null) this.#children.set(r.parentId, (this.#children.get(r.parentId) ?? 0) + 1);
  }

  #reload(): void {
    this.#byId.clear();
    this.#byKey.clear();
    this.#children.clear();
    for (const row of this.#all.all() as Row[]) this.#remember(toRecord(row));
  }
}

function toRecord(row: Row): SnapshotRecord {
  return {
    id: Number(row.id),
    key: row.key,
    parentId: row.parent_id === null ? null : Number(row.parent_id),
    kind: Number(row.kind) as Kind,
    createdNs: BigInt(row.created_ns),
    updatedNs: BigInt(row.updated_ns),
    labels: JSON.parse(row.labels) as Record<string, string>,
    size: Number(row.size),
    inodes: Number(row.inodes),
    remote: Number(row.remote) === 1,
  };
}

