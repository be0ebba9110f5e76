import * as net from 'node:net';

/** True when port can be bound on host right now (someone may take it a moment later). */
export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** A port the OS considers free on host. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not obtain a free port'))));
    });
  });
}

/**
 * One port per preference, each free and distinct: the preferred one when it is free, otherwise
 * any free port.
 */
export async function choosePorts(preferred: number[], host = '127.0.0.1'): Promise<number[]> {
  const chosen: number[] = [];
  for (const want of preferred) {
    if (!chosen.includes(want) && (await isPortFree(want, host))) {
      chosen.push(want);
      continue;
    }
    let port = await freePort(host);
    for (let i = 0; chosen.includes(port) && i < 20; i++) port = await freePort(host);
    chosen.push(port);
  }
  return chosen;
}
