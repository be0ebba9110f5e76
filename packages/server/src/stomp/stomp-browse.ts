import type { StompFrame } from '@keel/protocol';
import { keelToStompDestination } from './stomp-destinations';

const EMPTY_BODY = Buffer.alloc(0);

/**
 * ActiveMQ's STOMP queue browser (SUBSCRIBE header `browser:true`, ActiveMQ 5.6+ "Queue Browsing"):
 * whether a SUBSCRIBE asks for it.
 */
export function isBrowseSubscribe(h: Record<string, string>): boolean {
  return h.browser === 'true';
}

/**
 * The "end of browse" MESSAGE after the last browsed message, as ActiveMQ's
 * StompQueueBrowserSubscription writes it: `subscription`, the header `browser` with the value
 * `end` (the frame's line `browser:end`), the `destination`, `message-id:0` and no body.
 */
export function browseEndFrame(subscription: string, destination: string, connectionId: string): StompFrame {
  return {
    command: 'MESSAGE',
    headers: [
      ['subscription', subscription],
      ['browser', 'end'],
      ['destination', keelToStompDestination(destination, connectionId)],
      ['message-id', '0'],
    ],
    body: EMPTY_BODY,
  };
}
