import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Switches } from './switches.ts';

/** Which connection a request came on, for the request log: cold and reused connections tell apart. */
export type ConnectionInfo = Readonly<{
  /** 1, 2, ... in the order the sandbox accepted the connections. */
  id: number;
  /** The address the client connected to (e.g. 127.0.0.2 when a bench gives each instance its own loopback address). */
  localAddress: string;
  /** This request's place on its connection: 1 is the first. */
  request: number;
}>;

type Tracked = { id: number; requests: number; inFlight: number; idleTimer: NodeJS.Timeout | null };

/**
 * Connection behaviour of a provider, for the gate's tests and bench:
 * - `connectDelayMs`: a new connection is read only this long after it was accepted, so its first
 *   request reaches the provider that much later (a provider slow to take new connections: a TLS
 *   handshake, a busy accept queue). Requests on a connection already taken are not delayed.
 * - `idleResetMs`: a connection with no request in flight for this long is reset (TCP RST, and no
 *   `Keep-Alive: timeout` hint changes: like a load balancer dropping idle connections), so the
 *   client's next request needs a new connection.
 * Returns the connection a request socket belongs to.
 */
export function shapeConnections(
  server: Server,
  switches: () => Readonly<Switches>,
): (socket: Socket) => ConnectionInfo {
  const tracked = new WeakMap<Socket, Tracked>();
  let accepted = 0;

  const armIdleReset = (socket: Socket, state: Tracked) => {
    if (state.idleTimer) clearTimeout(state.idleTimer);
    state.idleTimer = null;
    const after = switches().idleResetMs;
    if (after <= 0 || state.inFlight > 0) return;
    state.idleTimer = setTimeout(() => {
      if (state.inFlight === 0 && !socket.destroyed) socket.resetAndDestroy();
    }, after);
    state.idleTimer.unref();
  };

  // Every connection starts paused (its handle not read: net.Server's pauseOnConnect, which
  // http.Server does not take as an option) and is resumed at once or after connectDelayMs.
  // socket.pause() after the fact would not do: the HTTP parser reads the handle directly.
  (server as Server & { pauseOnConnect: boolean }).pauseOnConnect = true;
  server.on('connection', (socket: Socket) => {
    const state: Tracked = { id: ++accepted, requests: 0, inFlight: 0, idleTimer: null };
    tracked.set(socket, state);
    socket.once('close', () => {
      if (state.idleTimer) clearTimeout(state.idleTimer);
    });
    const delayMs = switches().connectDelayMs;
    if (delayMs > 0) {
      setTimeout(() => {
        if (!socket.destroyed) socket.resume();
      }, delayMs).unref();
    } else {
      socket.resume();
    }
    armIdleReset(socket, state);
  });

  server.on('request', (request, response) => {
    const socket = request.socket;
    const state = tracked.get(socket);
    if (!state) return;
    state.inFlight += 1;
    if (state.idleTimer) clearTimeout(state.idleTimer);
    response.once('close', () => {
      state.inFlight -= 1;
      armIdleReset(socket, state);
    });
  });

  return (socket) => {
    const state = tracked.get(socket);
    if (!state) return { id: 0, localAddress: socket.localAddress ?? '', request: 0 };
    state.requests += 1;
    return { id: state.id, localAddress: socket.localAddress ?? '', request: state.requests };
  };
}
