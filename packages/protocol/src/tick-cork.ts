/** What TickCork needs of a socket (a net.Socket, a tls.TLSSocket …). */
export interface CorkableStream {
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
  readonly writableHighWaterMark: number;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
  emit(event: 'drain'): boolean;
}

/**
 * Coalesces a connection's writes (broker listeners and the client's wire): the frames written in
 * one turn of the event loop (the MESSAGEs of the dispatch rounds that every socket read of that
 * turn started, the RECEIPTs of a commit) are gathered and leave in one `socket.write` in the
 * turn's check phase (`setImmediate`) — one pass through the stream machinery and one syscall
 * instead of one each. A flush on `process.nextTick` (before issue #25) ran after each I/O callback:
 * with 4 producers and 4 consumers at a window of 64, the reads of the producers' sockets in one
 * poll phase each started a write to the same consumers; gathered over the whole turn, the broker's
 * write syscalls per message fell from 0.22-0.23 to 0.13 (/proc/PID/io syscw, 30,000 messages,
 * two alternating pairs of runs). The delay is bounded by the rest of the turn: the check phase
 * follows the poll phase that produced the frames, timers' frames leave in the same turn too. Returns false once the socket's buffer plus what is gathered reaches the socket's
 * high-water mark: the caller waits for `drain`, which the socket emits after the flush — or, when
 * the socket took the flushed bytes at once (a synchronous write returns true and emits no `drain`),
 * TickCork emits it. Call `flush()` before `socket.end()` or `destroy()`: they do not know about the
 * gathered frames.
 */
export class TickCork {
  /** Gathered output: whole frames (Buffer), frame heads to encode as UTF-8 (string), single bytes (number). */
  private items: Array<Buffer | string | number> = [];
  /** Upper bound of the gathered bytes (a head counts 3 bytes per UTF-16 unit). */
  private bytes = 0;
  /** A write returned false: someone waits for 'drain'. */
  private owesDrain = false;
  private readonly flushBound = (): void => this.flush();

  constructor(private readonly socket: CorkableStream) {}

  /** Gather an encoded frame. */
  write(buf: Buffer): boolean {
    return this.gather(buf, buf.length);
  }

  /**
   * Gather a frame given as its head (text, encoded as UTF-8 at the flush, or bytes), its body and
   * one end byte (STOMP's NUL, the native 0xCE): the frame is never a Buffer of its own, it is written straight into the
   * flush's buffer — one allocation and one copy of the body per tick instead of per frame.
   */
  writeFrame(head: string | Buffer, body: Buffer, end: number): boolean {
    this.gather(head, typeof head === 'string' ? head.length * 3 : head.length);
    if (body.length > 0) this.gather(body, body.length);
    return this.gather(end, 1);
  }

  private gather(item: Buffer | string | number, bound: number): boolean {
    if (this.items.length === 0) setImmediate(this.flushBound);
    this.items.push(item);
    this.bytes += bound;
    if (this.socket.writableLength + this.bytes < this.socket.writableHighWaterMark) return true;
    this.owesDrain = true;
    return false;
  }

  /** Write what is gathered now. */
  flush(): void {
    const items = this.items;
    if (items.length === 0) return;
    const bound = this.bytes;
    this.items = [];
    this.bytes = 0;
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) return;
    let data: Buffer;
    const first = items[0]!;
    if (items.length === 1 && typeof first !== 'string' && typeof first !== 'number') data = first;
    else {
      data = Buffer.allocUnsafe(bound);
      let off = 0;
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!;
        if (typeof item === 'string') off += data.write(item, off);
        else if (typeof item === 'number') data[off++] = item;
        else off += item.copy(data, off);
      }
      data = data.subarray(0, off);
    }
    const accepted = socket.write(data);
    if (this.owesDrain) {
      this.owesDrain = false;
      if (accepted) socket.emit('drain');
    }
  }
}
