export { serveSnapshots, stopServer } from './server.js';
export { loadSnapshotsService, snapshotsHandlers } from './snapshots-service.js';
export { toGrpcStatus, toServiceError } from './grpc-status.js';
