import type { GroupCommitWriter } from './group-commit';
import type { StoreBatch } from './store/store';

function ignore(): void {}

/**
 * The store's record that a stored message was handed to a consumer (issue #17.5): its delivery
 * count raised before the consumer settles it, so that a master taking over after a handover or a
 * crash flags exactly the messages delivered before as redelivered (JMSRedelivered, STOMP
 * `redelivered`), and not every message stored under an earlier epoch.
 *
 * The mark is a cancellable, fire-and-forget write of group commit: a consumer that acknowledges
 * (or nacks, whose own count supersedes it) before the mark's round starts withdraws it, so fast
 * consumers cost no extra write. A round that fails for a passing reason is not the end of it: the
 * mark is written again as an ordinary fire-and-forget operation (retried until it commits) unless
 * the message was settled meanwhile. A fenced or closed writer refuses it (nothing to record for a
 * node that no longer writes). The one window left: a crash between a dispatch and the commit of
 * its mark (docs/architecture.md, "Redelivered flag").
 */
export class DeliveryMark {
  private settled = false;
  private readonly cancel: () => boolean;

  constructor(writer: GroupCommitWriter, op: (b: StoreBatch) => void, holdMs: number) {
    const write = writer.writeCancellable(op, undefined, holdMs);
    this.cancel = write.cancel;
    write.committed.then(ignore, () => {
      if (!this.settled) writer.writeLater(op).catch(ignore);
    });
  }

  /** The consumer settled the message: withdraw the mark; true when it will never be written. */
  withdraw(): boolean {
    this.settled = true;
    return this.cancel();
  }
}
