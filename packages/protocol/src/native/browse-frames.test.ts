/**
 * The browse fields of the native codec: SUBSCRIBE's `browse` and MESSAGE's `browseEnd` (the end
 * of a browse, docs/protocol.md section 5.1), in the JSON form and with compact headers.
 */
import { ProtocolError } from '../errors';
import { COMPACT_HEADER_FLAG } from './compact';
import { FrameDecoder } from './decoder';
import { encodeFrame } from './encoder';
import { FRAME_END, type Frame, FrameType, type MessageFrame, type SubscribeFrame } from './frames';

function decode(bytes: Buffer): Frame[] {
  const decoder = new FrameDecoder();
  const out: Frame[] = [];
  // Split at every offset: the end marker's JSON fallback must survive any chunking.
  for (let cut = 0; cut <= bytes.length; cut++) {
    const frames = [...decoder.push(bytes.subarray(0, cut)), ...decoder.push(bytes.subarray(cut))];
    if (cut === 0) out.push(...frames);
    else expect(frames).toEqual(out);
  }
  return out;
}

function isCompact(bytes: Buffer): boolean {
  return bytes.readUInt32BE(7) >= COMPACT_HEADER_FLAG;
}

/** A MESSAGE with a hand-made JSON header (bypassing the encoder). */
function rawMessage(header: object): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const buf = Buffer.alloc(7 + 4 + json.length + 1);
  buf[0] = FrameType.Message;
  buf.writeUInt16BE(1, 1);
  buf.writeUInt32BE(4 + json.length, 3);
  buf.writeUInt32BE(json.length, 7);
  json.copy(buf, 11);
  buf[buf.length - 1] = FRAME_END;
  return buf;
}

const END: MessageFrame = {
  type: FrameType.Message,
  channel: 3,
  consumerId: 'b-1',
  browseEnd: true,
  message: {
    destination: 'queue://orders',
    body: Buffer.alloc(0),
    persistent: false,
    priority: 0,
    timestamp: 1_700_000_000_000,
    expiration: 0,
    properties: {},
    messageId: '0',
    deliveryCount: 0,
    redelivered: false,
  },
};

describe('browse fields of the native codec', () => {
  it('round-trips SUBSCRIBE with browse', () => {
    const f: SubscribeFrame = {
      type: FrameType.Subscribe,
      channel: 2,
      consumerId: 'b-1',
      destination: 'queue://orders',
      prefetch: 500,
      browse: true,
      receiptId: 'r-1',
    };
    expect(decode(encodeFrame(f))).toEqual([f]);
    expect(decode(encodeFrame(f, { compact: true }))).toEqual([f]);
  });

  it('round-trips the end marker as JSON, also when compact headers are on', () => {
    expect(decode(encodeFrame(END))).toEqual([END]);
    const compact = encodeFrame(END, { compact: true });
    // The compact MESSAGE header has no flag for it: JSON carries the marker.
    expect(isCompact(compact)).toBe(false);
    expect(decode(compact)).toEqual([END]);
    // An ordinary MESSAGE still goes compact.
    const { browseEnd: _e, ...plain } = END;
    expect(isCompact(encodeFrame(plain, { compact: true }))).toBe(true);
  });

  it('rejects a browseEnd that is not a boolean', () => {
    const { type: _t, channel: _c, ...header } = END;
    const { body: _b, ...message } = END.message;
    const bytes = rawMessage({ ...header, message, browseEnd: 'true' });
    expect(() => new FrameDecoder().push(bytes)).toThrow(ProtocolError);
    expect(() => new FrameDecoder().push(bytes)).toThrow(/"browseEnd" must be a boolean/);
  });
});
