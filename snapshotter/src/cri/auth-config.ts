/** The CRI `AuthConfig` of a pull turned into the registry client's `Credential` (docker's precedence). */
import type { Credential } from '../registry/index.js';

/** The AuthConfig fields as decoded (proto3 strings, '' when unset). */
export interface CriAuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  server_address?: string;
  identity_token?: string;
  registry_token?: string;
}

/**
 * A registry token wins, then an identity token, then `auth` (base64 `user:password`), then
 * username/password; undefined for an empty or malformed AuthConfig (an anonymous pull).
 */
export function credentialOf(a: CriAuthConfig | null | undefined): Credential | undefined {
  if (!a) return undefined;
  if (a.registry_token) return { type: 'registry_token', token: a.registry_token };
  let username = a.username ?? '';
  let password = a.password ?? '';
  if (a.auth) {
    const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (a.identity_token) return { type: 'identity_token', username, token: a.identity_token };
  if (username === '' && password === '') return undefined;
  return { type: 'basic', username, password };
}
