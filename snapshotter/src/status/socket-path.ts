/** Where the status endpoint listens; its own module so the daemon finds it without loading the read path. */
import { dirname, join } from 'node:path';

/** The status socket of a daemon whose gRPC socket is `address` (config `status_address` wins). */
export function statusSocketPath(address: string, statusAddress: string): string {
  return statusAddress !== '' ? statusAddress : join(dirname(address), 'status.sock');
}
