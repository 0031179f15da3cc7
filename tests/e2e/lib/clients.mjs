// Clients the end-to-end tests share: the admin API with the test token, and the real Segment
// SDK (@segment/analytics-node) pointed at a test server, flushing every message at once.

import { Analytics } from '@segment/analytics-node';
import { request, WRITE_KEY, ADMIN_TOKEN } from './journeyd.mjs';

/** An admin API call; a string body is sent as YAML unless contentType says otherwise. */
export const api = (server, method, path, body, contentType) =>
  request(server.url, path, {
    method, body, bearer: ADMIN_TOKEN,
    headers: typeof body === 'string' ? { 'Content-Type': contentType ?? 'application/yaml' } : {},
  });

/** The Segment SDK on server: send(method, msg) resolves once the server acknowledged it. */
export function sdk(server) {
  const a = new Analytics({ writeKey: WRITE_KEY, host: server.url, path: '/v1/batch', flushAt: 1, flushInterval: 20, maxRetries: 0 });
  return {
    send: (method, msg) => new Promise((res, rej) => a[method](msg, (err) => (err ? rej(err) : res()))),
    close: () => a.closeAndFlush({ timeout: 10_000 }),
  };
}
