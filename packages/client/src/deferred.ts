const noop = (): void => {};

/** A promise with its settle functions; settling twice is a no-op. */
export class Deferred<T> {
  readonly promise: Promise<T>;
  settled = false;
  private res!: (value: T) => void;
  private rej!: (err: Error) => void;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.res = resolve;
      this.rej = reject;
    });
  }

  resolve(value: T): void {
    if (this.settled) return;
    this.settled = true;
    this.res(value);
  }

  reject(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    // A rejection nobody awaits must not crash the process (the caller may have gone away). Attached
    // here, not in the constructor: one promise less per call that resolves.
    this.promise.catch(noop);
    this.rej(err);
  }
}
