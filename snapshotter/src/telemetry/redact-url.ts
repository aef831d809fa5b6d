/** Endpoints as they may be logged: an OTLP URL can carry credentials in its userinfo. */

/** `url` without user name and password (`https://u:p@host/x` → `https://host/x`); unparsable text is replaced. */
export function redactUserinfo(url: string | undefined): string | undefined {
  if (url === undefined || url === '') return url;
  try {
    const u = new URL(url);
    if (u.username === '' && u.password === '') return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    // Not a URL we can take apart: keep only what cannot hold credentials.
    return url.includes('@') ? '<redacted>' : url;
  }
}
