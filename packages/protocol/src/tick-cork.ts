/** What TickCork needs of a socket (a net.Socket, a tls.TLSSocket …). */
export interface CorkableStream {
  cork(): void;
  uncork(): void;
  write(chunk: Buffer): boolean;
}

/**
 * Coalesces a connection's writes (broker listeners and the client's wire): the first write of a tick corks the socket and the next tick
 * uncorks it, so the frames a dispatch round produces (MESSAGEs, RECEIPTs) leave in one writev
 * instead of one syscall each. Returns what `socket.write` returns (false: the buffer is full).
 */
export class TickCork {
  private corked = false;

  constructor(private readonly socket: CorkableStream) {}

  write(buf: Buffer): boolean {
    const socket = this.socket;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    return socket.write(buf);
  }

  /** Send what is corked now (before a destroy, which would discard it). */
  flush(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }
}
