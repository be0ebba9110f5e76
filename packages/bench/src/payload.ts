/**
 * Message bodies: `KB1 <run> <seq> <sentAtMs>\n` padded with '.' to the requested size, so every
 * broker carries the timestamp untouched (no reliance on custom headers surviving). The clock is
 * this process's `performance.now()`: producers and consumers run in the same process.
 */
const MAGIC = 'KB1 ';

export interface PayloadInfo {
  runId: string;
  seq: number;
  sentAtMs: number;
}

export function encodePayload(info: PayloadInfo, sizeBytes: number): Buffer {
  const head = `${MAGIC}${info.runId} ${info.seq} ${info.sentAtMs.toFixed(3)}\n`;
  const buf = Buffer.alloc(Math.max(sizeBytes, head.length), 0x2e);
  buf.write(head, 0, 'latin1');
  return buf;
}

/** The header of a bench body, or null for anything else. */
export function decodePayload(body: Buffer): PayloadInfo | null {
  const nl = body.indexOf(0x0a);
  if (nl < 0 || nl > 200) return null;
  const head = body.toString('latin1', 0, nl);
  if (!head.startsWith(MAGIC)) return null;
  const parts = head.slice(MAGIC.length).split(' ');
  if (parts.length !== 3) return null;
  const seq = Number(parts[1]);
  const sentAtMs = Number(parts[2]);
  if (!Number.isSafeInteger(seq) || !Number.isFinite(sentAtMs)) return null;
  return { runId: parts[0]!, seq, sentAtMs };
}
