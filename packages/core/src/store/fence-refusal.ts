import { FencedError, type KeelError, StoreError } from '@keel/protocol';

/** What a store knows when a write failed its epoch check (DESIGN.md, "Fencing token"). */
export interface FenceCheckFailure {
  cluster: string;
  /** The epoch the refused write was made for. */
  writeEpoch: number;
  /** The epoch this store writes for now (its last takeover). */
  currentEpoch: number;
  /** This node's name, as it wrote it into the cluster row at its takeover; null before any. */
  node: string | null;
  /**
   * True while this store's own takeOver is running (its answer may trail the refusal), or after
   * one failed without an answer (its epoch bump may have committed all the same).
   */
  takingOver: boolean;
  /** The cluster row read after the refusal; null when it could not be read. */
  clusterRow: { epoch: number; master: string | null } | null;
}

/**
 * Tell a rival's takeover from this node's own older epoch. A write made for epoch N that reaches
 * Postgres after this same node has re-taken the lock (epoch N+1, say after its lock session was
 * terminated and it resumed) fails the epoch check, yet nobody else took over: that write is only
 * refused — nothing of it was stored — and is answered as a retryable STORE_UNAVAILABLE, while the
 * node goes on serving at its new epoch. Only a cluster row that names another master, or an epoch
 * this node never took, is a FencedError. When the row cannot be read, a write of an epoch older
 * than this store's current one is still known to be its own, and so is one refused while this
 * node's own takeover runs: a takeover starts only once the node holds the master lock, so no rival
 * can have bumped the epoch since, and the refused write stored nothing either way.
 */
export function fenceRefusal(f: FenceCheckFailure): KeelError {
  const row = f.clusterRow;
  const ownNewer =
    row === null
      ? f.writeEpoch !== f.currentEpoch || f.takingOver
      : f.node !== null &&
        row.master === f.node &&
        row.epoch > f.writeEpoch &&
        (row.epoch <= f.currentEpoch || f.takingOver);
  if (ownNewer) {
    const now = row?.epoch ?? f.currentEpoch;
    return new StoreError(
      `a write for epoch ${f.writeEpoch} was refused: this node (${f.node}) has since taken the lock of cluster ${f.cluster} again at epoch ${now}; nothing of it was stored`,
      'STORE_UNAVAILABLE',
      { retryable: true },
    );
  }
  const where =
    row === null
      ? `cluster ${f.cluster} is no longer at epoch ${f.writeEpoch} (its row could not be read)`
      : `cluster ${f.cluster} is at epoch ${row.epoch}, taken by ${row.master ?? 'an unknown node'}`;
  return new FencedError(
    `${where}; this node (${f.node ?? 'never master'}) wrote for epoch ${f.writeEpoch}: another node took over`,
  );
}
