interface CorkableStream {
  cork(): void;
  uncork(): void;
}

/**
 * Issue pipelined statements with the client's socket corked, so they leave in one write.
 *
 * pg writes each protocol message of a query on its own (`Connection._send`: bind, describe,
 * execute, sync — four socket writes per prepared statement), and a commit round is BEGIN, the
 * fence check, its statements and COMMIT: about twenty write system calls per round, each of which
 * on a loopback socket also runs the receiving side's TCP work (issue #25.5: visible in both
 * brokers' profiles). Corked, Node gathers them and writes once (writev) on uncork. The statements
 * and their order are unchanged; a client without a stream to cork runs `issue` as it is.
 */
export function corked<T>(client: unknown, issue: () => T): T {
  const stream = (client as { connection?: { stream?: Partial<CorkableStream> } }).connection?.stream;
  if (typeof stream?.cork !== 'function' || typeof stream.uncork !== 'function') return issue();
  stream.cork();
  try {
    return issue();
  } finally {
    stream.uncork();
  }
}
