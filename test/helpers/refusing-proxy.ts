import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Test } from 'tap';

export type RefusingProxy = Readonly<{
  url: string;
  /** Stops listening and cuts every connection: the next connection attempt is refused (ECONNREFUSED). */
  refuse(): Promise<void>;
  /** Listens again, on the same port. */
  accept(): Promise<void>;
}>;

/**
 * A TCP relay in front of a provider (the sandbox) that can refuse connections for real: what a
 * client sees when the provider's host is down. A provider cannot refuse one request on a
 * connection it has already accepted, so this sits in front of it, on its own port.
 */
export async function startRefusingProxy(t: Test, target: string): Promise<RefusingProxy> {
  const { hostname, port: targetPort } = new URL(target);
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let port = 0;

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const next = createServer((client) => {
        const upstream = createConnection({ host: hostname, port: Number(targetPort) });
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.on('error', () => {});
          socket.on('close', () => {
            sockets.delete(socket);
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream).pipe(client);
      });
      next.once('error', reject);
      next.listen(port, '127.0.0.1', () => {
        next.off('error', reject);
        port = (next.address() as { port: number }).port;
        server = next;
        resolve();
      });
    });

  /** Closes the listener, then cuts the connections (server.close waits for them to end). */
  const refuse = async () => {
    const closing = server;
    server = null;
    const closed = closing ? new Promise<void>((resolve) => closing.close(() => resolve())) : Promise.resolve();
    for (const socket of sockets) socket.destroy();
    await closed;
  };

  await listen();
  t.teardown(refuse);
  return {
    url: `http://127.0.0.1:${port}`,
    refuse,
    accept: async () => {
      if (!server) await listen();
    },
  };
}
