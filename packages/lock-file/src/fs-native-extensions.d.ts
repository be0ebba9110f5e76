/** The part of fs-native-extensions (no bundled types) that the file locker uses. */
declare module 'fs-native-extensions' {
  /** Linux: fcntl(F_OFD_SETLK), an open-file-description lock; macOS/BSD: flock(LOCK_NB). */
  export function tryLock(
    fd: number,
    offset?: number,
    length?: number,
    options?: { shared?: boolean },
  ): boolean;
  export function unlock(fd: number, offset?: number, length?: number): void;
}
