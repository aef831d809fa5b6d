import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FaultServer {
  /** `127.0.0.1:PORT` */
  host: string;
  url: string;
  requests: IncomingMessage[];
  close(): Promise<void>;
}

/** A loopback HTTP server whose handler injects faults; records every request it sees. */
export async function faultServer(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<FaultServer> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    handler(req, res, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
