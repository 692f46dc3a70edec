/** The Content-Security-Policy of the dashboard's pages (set per response by server/web/main.ts). */

/**
 * The pages' policy: scripts only with this response's nonce (and what they load, by
 * 'strict-dynamic': noVNC and xterm.js come as chunks); styles from the app (inline style
 * attributes too: React and xterm.js set them); images from the dashboard, data: and blob:
 * (screenshots); connections (the event stream, the console websockets) to this origin
 * only; no frames, plugins or foreign form targets. Development adds 'unsafe-eval' for
 * Next's hot reload.
 */
export function contentSecurityPolicy(nonce: string, dev = false): string {
  return [
    "default-src 'self'",
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic'${dev ? " 'unsafe-eval'" : ""}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join("; ");
}
