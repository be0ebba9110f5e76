import * as net from 'node:net';

/**
 * Ports for test servers come from below the kernel's ephemeral range (32768–60999 on Linux), in a
 * slice of their own per jest worker, handed out round robin and checked by binding. The kernel
 * gives ephemeral ports to every outgoing connection (clients of Postgres, of brokers…), and to
 * `listen(0)` in any process: a port taken from that range can be grabbed again before the
 * broker binds it. Outside jest (no JEST_WORKER_ID) the OS picks.
 */
const RANGE_START = 20_000;
const SLICE = 1_500;
const worker = Number(process.env.JEST_WORKER_ID ?? 0);
let next = 0;

function tryBind(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (bound > 0 ? resolve(bound) : reject(new Error('could not obtain a free port'))));
    });
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago. Someone else can still take it before you
 * bind it (far less likely than with an OS-picked ephemeral port, see above).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  if (worker > 0) {
    // Each worker gets its own slice; a process start offset spreads successive runs.
    const base = RANGE_START + ((worker - 1) % 8) * SLICE;
    if (next === 0) next = (process.pid * 7) % SLICE;
    for (let i = 0; i < SLICE; i++) {
      const port = base + (next % SLICE);
      next += 1;
      try {
        return await tryBind(port, host);
      } catch {
        // in use: try the next one
      }
    }
  }
  return tryBind(0, host);
}

/** `count` distinct free ports. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  let guard = 0;
  while (ports.size < count && guard++ < count * 20) ports.add(await freePort(host));
  if (ports.size < count) throw new Error(`could not obtain ${count} distinct free ports`);
  return [...ports];
}
