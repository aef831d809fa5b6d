/** One plain-HTTP GET for what a registry answers (its status and challenge), body discarded. */
import { request } from 'node:http';

/** GET `url` with `headers`; resolves with the status and `WWW-Authenticate` (5 s deadline). */
export function httpStatus(url: string, headers: Record<string, string> = {}): Promise<{ status: number; wwwAuthenticate: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { timeout: 5000, headers }, (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, wwwAuthenticate: String(res.headers['www-authenticate'] ?? '') });
    });
    req.once('timeout', () => req.destroy(new Error(`GET ${url}: no answer in 5 s`)));
    req.once('error', reject);
    req.end();
  });
}
