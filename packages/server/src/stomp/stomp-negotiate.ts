import { ProtocolError, STOMP_VERSIONS, type StompVersion } from '@keel/protocol';

/**
 * STOMP 1.2 "Protocol Negotiation": the client lists the versions it speaks in `accept-version`;
 * the server answers with the highest one both support. Without the header the client speaks
 * STOMP 1.0. Returns null when there is no common version (the server then sends an ERROR frame
 * with a `version` header listing its versions, and closes).
 */
export function negotiateStompVersion(acceptVersion: string | undefined): StompVersion | null {
  if (acceptVersion === undefined) return '1.0';
  const offered = new Set(acceptVersion.split(',').map((v) => v.trim()));
  for (let i = STOMP_VERSIONS.length - 1; i >= 0; i--) {
    const v = STOMP_VERSIONS[i]!;
    if (offered.has(v)) return v;
  }
  return null;
}

export interface StompHeartbeat {
  /** How often the server sends (an EOL when it has nothing else to send); 0 = never. */
  sendIntervalMs: number;
  /** How often the client promised to send; 0 = it does not, and no one watches. */
  receiveIntervalMs: number;
}

/** Parse a `heart-beat` header `cx,cy`; missing = `0,0`. */
export function parseHeartbeatHeader(value: string | undefined): [number, number] {
  if (value === undefined) return [0, 0];
  const m = /^\s*(\d{1,9})\s*,\s*(\d{1,9})\s*$/.exec(value);
  if (!m)
    throw new ProtocolError(
      `invalid heart-beat header ${JSON.stringify(value)}: expected two integers "cx,cy"`,
    );
  return [Number(m[1]), Number(m[2])];
}

/**
 * STOMP 1.2 "Heart-beating": with the client's `cx,cy` and the server's `sx,sy`, the server sends
 * every max(sx, cy) ms unless either is 0, and the client sends every max(cx, sy) ms unless
 * either is 0.
 */
export function negotiateHeartbeat(client: [number, number], server: [number, number]): StompHeartbeat {
  const [cx, cy] = client;
  const [sx, sy] = server;
  return {
    sendIntervalMs: sx === 0 || cy === 0 ? 0 : Math.max(sx, cy),
    receiveIntervalMs: cx === 0 || sy === 0 ? 0 : Math.max(cx, sy),
  };
}
