/**
 * `clip-snapshotter status [IMAGE]`: asks the running daemon's status socket how each mounted layer
 * was served — how much of it is on this node, where its bytes came from, whether the rest is still
 * arriving — and prints it per image (or the JSON with `--json`).
 */
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../config/index.js';
import { dataCorrupt, findClipError, messageOf, unavailable } from '../errors/index.js';
import { statusSocketPath, type LayerStatus } from '../status/index.js';
import { formatBytes } from '../util/format-bytes.js';

export const STATUS_USAGE = `usage: clip-snapshotter status [IMAGE] [--config FILE] [--address SNAPSHOTTER_SOCKET]
                               [--status-address SOCKET] [--json]
`;

/** GET `path` over the unix socket `socket`; rejects after `timeoutMs`. */
function getJson(socket: string, path: string, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200) reject(dataCorrupt('CLIP_STATUS_BAD_ANSWER', `status endpoint answered HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
        else {
          try {
            resolve(JSON.parse(body));
          } catch (err) {
            reject(dataCorrupt('CLIP_STATUS_BAD_ANSWER', `status endpoint sent invalid JSON: ${messageOf(err)}`, err));
          }
        }
      });
    });
    req.on('timeout', () => req.destroy(unavailable('CLIP_STATUS_UNREACHABLE', `no answer from ${socket} within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(findClipError(err) ?? unavailable('CLIP_STATUS_UNREACHABLE', `cannot reach the daemon's status socket ${socket}: ${err.message}`, err)));
    req.end();
  });
}

const nonZero = (r: Record<string, number>): string => {
  const parts = Object.entries(r).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${formatBytes(v)}`);
  return parts.length > 0 ? parts.join(', ') : 'nothing';
};

/** The text `status` prints for `layers`, grouped by image. */
export function formatStatus(layers: LayerStatus[]): string {
  if (layers.length === 0) return 'no lazily mounted layers\n';
  const byImage = new Map<string, LayerStatus[]>();
  for (const l of layers) byImage.set(l.image, [...(byImage.get(l.image) ?? []), l]);
  let out = '';
  for (const [image, ls] of byImage) {
    const modes = ['lazy', 'whole', 'local', 'unread'].map((m) => [m, ls.filter((l) => l.mode === m).length] as const).filter(([, n]) => n > 0);
    out += `${image}: ${ls.length} layer(s): ${modes.map(([m, n]) => `${n} ${m}`).join(', ')}\n`;
    for (const l of ls) {
      const pct = l.size > 0 ? Math.floor((l.presentBytes / l.size) * 100) : 100;
      const completion = l.complete ? (l.extracted ? 'complete, extracted (new containers read it without FUSE)' : 'complete') : l.completing ? 'completion running' : 'partial, no completion running';
      out += `  ${l.layer.slice(0, 19)}  ${l.mode.padEnd(6)} present ${formatBytes(l.presentBytes)} of ${formatBytes(l.size)} (${pct}%), ${completion}\n`;
      out += `      served to reads: ${nonZero(l.served)}\n`;
      out += `      fetched: ${nonZero(l.fetched)}\n`;
      if (l.timeToFirstReadMs !== undefined) out += `      first read ${l.timeToFirstReadMs} ms after mount\n`;
    }
  }
  return out;
}

/** Run `status`; 0 ok, 1 daemon unreachable, 2 usage. */
export async function statusCommand(args: string[]): Promise<number> {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({
      args,
      options: { config: { type: 'string' }, address: { type: 'string' }, 'status-address': { type: 'string' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    }));
    if (positionals.length > 1) throw new Error('at most one IMAGE');
  } catch (err) {
    process.stderr.write(`clip-snapshotter status: ${messageOf(err)}\n${STATUS_USAGE}`);
    return 2;
  }
  const cfg = await loadConfig(values.config ?? DEFAULT_CONFIG_PATH, values.config === undefined);
  const socket = values['status-address'] ?? statusSocketPath(values.address ?? cfg.address, cfg.statusAddress);
  const image = positionals[0];
  const res = (await getJson(socket, `/v1/layers${image ? `?image=${encodeURIComponent(image)}` : ''}`)) as { layers: LayerStatus[] };
  process.stdout.write(values.json ? `${JSON.stringify(res)}\n` : formatStatus(res.layers));
  return 0;
}
