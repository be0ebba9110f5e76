/**
 * Stops a child broker process: SIGTERM (its graceful stop), SIGKILL if it has not exited after
 * timeoutMs; resolves once it has exited. Shared by `keel start` and `keel drill`.
 */
export async function terminateChild(
  child: { signal(s: NodeJS.Signals): void; readonly exited: boolean; readonly exitPromise: Promise<void> },
  timeoutMs: number,
): Promise<void> {
  child.signal('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    child.exitPromise,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (!child.exited) {
    child.signal('SIGKILL');
    await child.exitPromise;
  }
}
