import { FencedError, StoreError } from '@keel/protocol';
import { type FenceCheckFailure, fenceRefusal } from './fence-refusal';

const base: FenceCheckFailure = {
  cluster: 'c1',
  writeEpoch: 9,
  currentEpoch: 10,
  node: 'node-a',
  takingOver: false,
  clusterRow: { epoch: 10, master: 'node-a' },
};

describe("fenceRefusal: a rival's takeover or this node's own older epoch", () => {
  it("a write of this node's older epoch after its own re-take is a retryable STORE_UNAVAILABLE", () => {
    const err = fenceRefusal(base);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ code: 'STORE_UNAVAILABLE', retryable: true });
    expect(err.message).toContain('write for epoch 9 was refused');
    expect(err.message).toContain('again at epoch 10');
  });

  it('is its own while its takeover is still being answered', () => {
    const err = fenceRefusal({
      ...base,
      currentEpoch: 9,
      clusterRow: { epoch: 10, master: 'node-a' },
      takingOver: true,
    });
    expect(err.code).toBe('STORE_UNAVAILABLE');
  });

  it('is its own when the row shows an epoch between the write and its takeover just answered', () => {
    // The row was read while its own takeover (epoch 11) committed: it shows the epoch before.
    const err = fenceRefusal({ ...base, currentEpoch: 11, clusterRow: { epoch: 10, master: 'node-a' } });
    expect(err.code).toBe('STORE_UNAVAILABLE');
  });

  it('is FENCED when the row names another master, with both epochs and the holder', () => {
    const err = fenceRefusal({ ...base, writeEpoch: 10, clusterRow: { epoch: 11, master: 'node-b' } });
    expect(err).toBeInstanceOf(FencedError);
    expect(err.message).toBe(
      'cluster c1 is at epoch 11, taken by node-b; this node (node-a) wrote for epoch 10: another node took over',
    );
  });

  it('is FENCED when a rival took over after this node re-took the lock', () => {
    expect(fenceRefusal({ ...base, clusterRow: { epoch: 11, master: 'node-b' } })).toBeInstanceOf(
      FencedError,
    );
  });

  it('is FENCED at an epoch of its own name it never took (no takeover running)', () => {
    const err = fenceRefusal({ ...base, writeEpoch: 10, clusterRow: { epoch: 12, master: 'node-a' } });
    expect(err.code).toBe('FENCED');
  });

  it('without the cluster row, an older write epoch is still known to be its own', () => {
    expect(fenceRefusal({ ...base, clusterRow: null }).code).toBe('STORE_UNAVAILABLE');
    expect(fenceRefusal({ ...base, writeEpoch: 10, clusterRow: null }).code).toBe('FENCED');
  });

  it('without the cluster row, a write refused during its own takeover is its own', () => {
    const during = { ...base, writeEpoch: 10, currentEpoch: 10, clusterRow: null, takingOver: true };
    expect(fenceRefusal(during).code).toBe('STORE_UNAVAILABLE');
  });
});
