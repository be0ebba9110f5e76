import type { DeliveredMessage, Message, PropertyValue } from '../message';

/**
 * Keel's native protocol (`tcp://`, port 61616). Spec: docs/protocol.md.
 *
 * Frame layout (AMQP-like), big-endian:
 *
 *   type:u8 | channel:u16 | length:u32 | payload[length] | 0xCE
 *
 * The payload of every frame is `headerLength:u32 | header (UTF-8 JSON object) | body bytes`. Only
 * SEND and MESSAGE carry body bytes; for every other type the body is empty. Channel 0 is the
 * connection; sessions use channels 1..65535. From version 2, SEND, MESSAGE, ACK and RECEIPT may
 * carry a compact binary header instead of JSON (compact.ts), flagged by headerLength's top bit.
 */
export const FRAME_END = 0xce;
export const FRAME_HEADER_SIZE = 7; // type + channel + length
export const FRAME_OVERHEAD = FRAME_HEADER_SIZE + 1 + 4; // + end marker + json length
/** The highest version this build speaks: 2 adds compact headers (compact.ts). */
export const PROTOCOL_VERSION = 2;
/** The lowest version this build still speaks (JSON headers only). */
export const MIN_PROTOCOL_VERSION = 1;
/** The first version with compact headers. */
export const COMPACT_PROTOCOL_VERSION = 2;
export const DEFAULT_MAX_FRAME_SIZE = 4 * 1024 * 1024;
/** The handshake starts with these 8 bytes from the client, like AMQP's protocol header. */
export const PROTOCOL_HEADER = Buffer.from([0x4b, 0x45, 0x45, 0x4c, 0x00, 0x02, 0x00, 0x00]); // "KEEL" 0 2 0 0

export enum FrameType {
  Hello = 1,
  Welcome = 2,
  Heartbeat = 3,
  Error = 4,
  Receipt = 5,
  SessionOpen = 6,
  SessionClose = 7,
  Subscribe = 8,
  Unsubscribe = 9,
  Send = 10,
  Message = 11,
  Ack = 12,
  Nack = 13,
  Credit = 14,
  TxBegin = 15,
  TxCommit = 16,
  TxRollback = 17,
  Close = 18,
  BrokerInfo = 19,
  TxOutcome = 20,
  RemoveDurable = 21,
  Request = 22,
  Response = 23,
}

export type AckMode = 'auto' | 'client' | 'individual';

export interface BrokerDescription {
  name: string;
  cluster: string;
  role: 'master' | 'slave' | 'recovering' | 'fenced' | 'waiting';
  epoch: number;
  version: string;
}

/** client → broker, first frame after the protocol header. */
export interface HelloFrame {
  type: FrameType.Hello;
  channel: 0;
  /** The highest protocol version the client speaks. */
  protocolVersion: number;
  /** The lowest version the client accepts (default: `protocolVersion`). */
  minProtocolVersion?: number;
  clientId?: string;
  username?: string;
  password?: string;
  /** Interval the client wants heartbeats at, ms; 0 = none. */
  heartbeatMs: number;
  maxFrameSize?: number;
}

/** broker → client: handshake accepted. */
export interface WelcomeFrame {
  type: FrameType.Welcome;
  channel: 0;
  /** The version chosen: the highest one both sides speak. */
  protocolVersion: number;
  connectionId: string;
  clientId: string;
  broker: BrokerDescription;
  /** The cluster's client URLs, for the failover transport (updateURIsSupported). */
  brokers: string[];
  heartbeatMs: number;
  maxFrameSize: number;
}

export interface HeartbeatFrame {
  type: FrameType.Heartbeat;
  channel: 0;
}

/** An error. `fatal` errors close the connection; others refer to one request by `receiptId`. */
export interface ErrorFrame {
  type: FrameType.Error;
  channel: number;
  code: string;
  message: string;
  retryable: boolean;
  fatal: boolean;
  receiptId?: string;
}

export interface ReceiptFrame {
  type: FrameType.Receipt;
  channel: number;
  receiptId: string;
  /** On the receipt of a SEND: the id the broker gave the message. */
  messageId?: string;
  /**
   * Version 2: more SEND receipts of the same channel answered by this one frame, in order after
   * `receiptId` (the broker gathers the receipts of one commit round; docs/protocol.md section 6).
   */
  more?: ReceiptEntry[];
}

/** One further receipt carried by a RECEIPT frame's `more`. */
export interface ReceiptEntry {
  receiptId: string;
  messageId?: string;
}

export interface SessionOpenFrame {
  type: FrameType.SessionOpen;
  channel: number;
  transacted: boolean;
  ackMode: AckMode;
  receiptId?: string;
}

export interface SessionCloseFrame {
  type: FrameType.SessionClose;
  channel: number;
  receiptId?: string;
}

export interface SubscribeFrame {
  type: FrameType.Subscribe;
  channel: number;
  consumerId: string;
  destination: string;
  /** Initial credit (ActiveMQ's prefetch). */
  prefetch: number;
  selector?: string;
  /** Durable topic subscription name (with the connection's client id). */
  durableName?: string;
  noLocal?: boolean;
  /**
   * Browse a queue without consuming (JMS QueueBrowser): a snapshot in delivery order, paced by
   * credit, then a MESSAGE with `browseEnd` (docs/protocol.md section 5.1).
   */
  browse?: boolean;
  /** ActiveMQ exclusive consumer: while on the queue it gets every message (docs/protocol.md). */
  exclusive?: boolean;
  /** ActiveMQ consumer priority, -128..127 (default 0): higher consumers first while they have credit. */
  priority?: number;
  receiptId?: string;
}

export interface UnsubscribeFrame {
  type: FrameType.Unsubscribe;
  channel: number;
  consumerId: string;
  receiptId?: string;
}

export interface RemoveDurableFrame {
  type: FrameType.RemoveDurable;
  channel: number;
  durableName: string;
  receiptId?: string;
}

export interface SendFrame {
  type: FrameType.Send;
  channel: number;
  /** Ask for a receipt; for persistent messages it is sent after the store commit. */
  receiptId?: string;
  /** Set when the send is part of the session's open transaction. */
  txId?: string;
  /**
   * A failover client resending, after reconnecting, a send the previous broker never confirmed
   * (same producerId/producerSeq). The new master may hold it briefly (see Broker.ackReplay).
   */
  resent?: boolean;
  /** Headers travel in the JSON part, the body as the frame's body bytes. */
  message: Message;
}

export interface MessageFrame {
  type: FrameType.Message;
  channel: number;
  consumerId: string;
  message: DeliveredMessage;
  /**
   * The end of a browse (SUBSCRIBE with `browse`): no message, every browsed one came before it
   * (ActiveMQ's STOMP `browser:end`). `message` is an empty placeholder (id "0", no body).
   */
  browseEnd?: boolean;
}

export interface AckFrame {
  type: FrameType.Ack;
  channel: number;
  consumerId: string;
  /** individual: exactly these; cumulative (client mode): every delivered message up to and including each. */
  messageIds: string[];
  cumulative?: boolean;
  txId?: string;
  receiptId?: string;
}

export interface NackFrame {
  type: FrameType.Nack;
  channel: number;
  consumerId: string;
  messageIds: string[];
  receiptId?: string;
}

export interface CreditFrame {
  type: FrameType.Credit;
  channel: number;
  consumerId: string;
  credit: number;
}

export interface TxBeginFrame {
  type: FrameType.TxBegin;
  channel: number;
  txId: string;
  receiptId?: string;
}

export interface TxCommitFrame {
  type: FrameType.TxCommit;
  channel: number;
  txId: string;
  receiptId?: string;
}

export interface TxRollbackFrame {
  type: FrameType.TxRollback;
  channel: number;
  txId: string;
  receiptId?: string;
}

/** Ask whether a transaction committed (failover resolves an unanswered commit this way). */
export interface TxOutcomeFrame {
  type: FrameType.TxOutcome;
  channel: number;
  txId: string;
  /** Set in the broker's answer; absent in the request. */
  outcome?: 'committed' | 'unknown';
  receiptId?: string;
}

export interface CloseFrame {
  type: FrameType.Close;
  channel: 0;
  receiptId?: string;
}

/** broker → client: the cluster's broker list or role changed. */
export interface BrokerInfoFrame {
  type: FrameType.BrokerInfo;
  channel: 0;
  broker: BrokerDescription;
  brokers: string[];
}

/** Generic request/response for small queries (e.g. destination stats); payload is free-form JSON. */
export interface RequestFrame {
  type: FrameType.Request;
  channel: number;
  receiptId: string;
  op: string;
  args: Record<string, PropertyValue | PropertyValue[]>;
}

export interface ResponseFrame {
  type: FrameType.Response;
  channel: number;
  receiptId: string;
  result: unknown;
}

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | HeartbeatFrame
  | ErrorFrame
  | ReceiptFrame
  | SessionOpenFrame
  | SessionCloseFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | RemoveDurableFrame
  | SendFrame
  | MessageFrame
  | AckFrame
  | NackFrame
  | CreditFrame
  | TxBeginFrame
  | TxCommitFrame
  | TxRollbackFrame
  | TxOutcomeFrame
  | CloseFrame
  | BrokerInfoFrame
  | RequestFrame
  | ResponseFrame;
