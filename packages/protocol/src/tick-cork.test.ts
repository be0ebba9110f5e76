import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { TickCork } from './tick-cork';

/** A real loopback connection: the server side writes through a TickCork, the client reads. */
async function pair(): Promise<{ server: Server; out: Socket; input: Socket; received: () => Buffer }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  const accepted = once(server, 'connection');
  const input = connect(address.port, '127.0.0.1');
  const chunks: Buffer[] = [];
  input.on('data', (c: Buffer) => chunks.push(c));
  const [out] = (await accepted) as [Socket];
  return { server, out, input, received: () => Buffer.concat(chunks) };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('TickCork', () => {
  let p: Awaited<ReturnType<typeof pair>>;
  beforeEach(async () => {
    p = await pair();
  });
  afterEach(async () => {
    p.input.destroy();
    p.out.destroy();
    await new Promise((r) => p.server.close(r));
  });

  it('gathers the writes of one tick into one socket write, in order', async () => {
    const writes: number[] = [];
    const original = p.out.write.bind(p.out);
    p.out.write = ((chunk: Buffer) => {
      writes.push(chunk.length);
      return original(chunk);
    }) as typeof p.out.write;
    const cork = new TickCork(p.out);
    cork.write(Buffer.from('one|'));
    cork.writeFrame('héad|', Buffer.from('body'), 0);
    cork.write(Buffer.from('|two'));
    expect(writes).toEqual([]);
    const expected = Buffer.concat([Buffer.from('one|héad|body'), Buffer.from([0]), Buffer.from('|two')]);
    await until(() => p.received().length >= expected.length, 'the gathered bytes');
    expect(writes).toEqual([expected.length]);
    expect(p.received()).toEqual(expected);
  });

  it('gathers the writes of every callback of one event-loop turn (two sockets read in one poll phase) into one write', async () => {
    const writes: number[] = [];
    const original = p.out.write.bind(p.out);
    p.out.write = ((chunk: Buffer) => {
      writes.push(chunk.length);
      return original(chunk);
    }) as typeof p.out.write;
    const cork = new TickCork(p.out);
    // Two macrotask callbacks of the same phase, as two sockets' 'data' events of one poll phase:
    // a flush on process.nextTick would run between them (two writes).
    await new Promise<void>((resolve) => {
      setImmediate(() => cork.write(Buffer.from('first|')));
      setImmediate(() => {
        cork.write(Buffer.from('second'));
        resolve();
      });
    });
    await until(() => p.received().length >= 12, 'the gathered bytes');
    expect(p.received().toString()).toBe('first|second');
    expect(writes).toEqual([12]);
  });

  it('says false past the high-water mark, and a drain follows even when the socket took it all', async () => {
    const cork = new TickCork(p.out);
    const frame = Buffer.alloc(1024, 0x61);
    let accepted = true;
    let n = 0;
    while (accepted) {
      accepted = cork.write(frame);
      n += 1;
    }
    expect(n).toBe(Math.ceil(p.out.writableHighWaterMark / 1024));
    await once(p.out, 'drain');
    await until(() => p.received().length === n * 1024, 'every byte');
  });

  it('flush() writes at once (before end), and nothing is written after the socket ended', async () => {
    const cork = new TickCork(p.out);
    cork.writeFrame('last', Buffer.alloc(0), 0);
    cork.flush();
    p.out.end();
    cork.write(Buffer.from('late'));
    await once(p.input, 'end');
    expect(p.received()).toEqual(Buffer.from('last\0'));
  });
});
