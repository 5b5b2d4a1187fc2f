import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';

export type Received = Readonly<{ at: number; headers: IncomingHttpHeaders; body: string; path: string }>;

/**
 * A real webhook subscriber on 127.0.0.1: records every request, and answers from a script of
 * status codes (then `fallback`). `respond` may also be replaced to hold or shape answers.
 */
export async function startSubscriber(t: Test, fallback = 200) {
  const received: Received[] = [];
  const script: Array<number | { status: number; headers?: Record<string, string> }> = [];
  const state = { fallback };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ at: Date.now(), headers: req.headers, body, path: req.url ?? '/' });
      const next = script.shift() ?? state.fallback;
      const answer = typeof next === 'number' ? { status: next } : next;
      res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    received,
    script,
    state,
    server,
  };
}
