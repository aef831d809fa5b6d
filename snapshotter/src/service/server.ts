import { chmod, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { unavailable } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { Snapshotter } from '../snapshots/index.js';
import { loadSnapshotsService, snapshotsHandlers } from './snapshots-service.js';
import type { StartTraces } from '../telemetry/index.js';

/** Serve the Snapshots API on a unix socket (mode 0600; a stale socket file is replaced); RPCs may join start traces. */
export async function serveSnapshots(s: Snapshotter, address: string, log: Logger, starts?: StartTraces): Promise<grpc.Server> {
  await mkdir(dirname(address), { recursive: true, mode: 0o711 });
  await rm(address, { force: true });
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
    'grpc.max_send_message_length': 16 * 1024 * 1024,
  });
  server.addService(loadSnapshotsService(), snapshotsHandlers(s, log, starts));
  // Restrict the socket before anyone can connect: bind happens under a 0177 umask.
  const old = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${address}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(unavailable('CLIP_LISTEN', `listen on ${address}: ${err.message}`, err)) : resolve(),
      ),
    );
  } finally {
    process.umask(old);
  }
  await chmod(address, 0o600);
  return server;
}

/** Stop accepting calls and let in-flight ones finish, bounded by `graceMs`. */
export async function stopServer(server: grpc.Server, graceMs = 5000): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
