import { FencedError, type KeelError, NotMasterError, StoreError } from '@keel/protocol';

/**
 * Why a master stops serving, as the error its clients get before the close (issue #17.6). Every
 * one is retryable: a failover client takes it for a reason to reconnect elsewhere and resend, not
 * for a failure of its requests (docs/errors.md).
 */
export type StepDownCause =
  /** Planned hand-over or node shutdown: another node is (about to be) master. */
  | { kind: 'not-master'; detail: string }
  /** A store write was refused for another node's newer epoch. */
  | { kind: 'fenced'; detail: string }
  /** The lock or the store stayed out of reach beyond the outage grace, or the takeover failed on it. */
  | { kind: 'store-unavailable'; detail: string };

/** A client that has the step-down ERROR and its FIN is given this long to close before it is cut. */
export const STEP_DOWN_CLOSE_MS = 500;

export function stepDownError(node: string, cause: StepDownCause): KeelError {
  switch (cause.kind) {
    case 'fenced':
      return new FencedError(`${node} stopped serving: ${cause.detail}`);
    case 'store-unavailable':
      return new StoreError(`${node} stopped serving: ${cause.detail}`, 'STORE_UNAVAILABLE', {
        retryable: true,
      });
    default:
      return new NotMasterError(`${node} is no longer the master: ${cause.detail}`);
  }
}

/** Resolves when `p` settles or after `ms`, whichever comes first. */
export function settleWithin(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}
