import * as net from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; we release it at once).
 * Someone else can take it before you bind it, so callers that bind later should retry on
 * EADDRINUSE.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not obtain a free port'))));
    });
  });
}

/** `count` distinct free ports. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  let guard = 0;
  while (ports.size < count && guard++ < count * 20) ports.add(await freePort(host));
  if (ports.size < count) throw new Error(`could not obtain ${count} distinct free ports`);
  return [...ports];
}
