import { InvalidArgumentError } from './errors';

/**
 * Broker URIs in ActiveMQ's forms, generic: option values stay strings here and the component
 * that owns an option (client, listener, network connector) interprets and validates it.
 *
 *   tcp://host:61616?wireFormat.maxFrameSize=1048576      simple URI
 *   stomp://host:61613                                     (default ports: tcp 61616, stomp 61613)
 *   [::1]:61616 in brackets for IPv6 hosts
 *   multicast://default?group=x                            discovery (ActiveMQ's default group address)
 *   failover:(tcp://a:1,tcp://b:2)?randomize=false         composite; options after ")" belong to it
 *   failover:(tcp://a:1?x=1,tcp://b:2)?y=2                 per-member options inside the parentheses
 *   failover:tcp://a:1,tcp://b:2                           no parentheses: every "?" belongs to a member
 *   static:(tcp://a,tcp://b)?maxReconnectDelay=5000        network connector members
 *   masterslave:(tcp://a1,tcp://a2)
 *   static:(failover:(tcp://a1,tcp://a2))                  a composite as a member
 *
 * The no-parentheses form follows ActiveMQ's URISupport.parseComposite: without "(" the whole
 * text after the scheme is the member list, so `failover:tcp://a:1,tcp://b:2?x=1` gives the
 * option to tcp://b:2, not to the failover transport.
 */
export interface BrokerUri {
  kind: 'broker';
  scheme: string;
  /** Host name or address; IPv6 addresses without their brackets. */
  host: string;
  port: number;
  options: Record<string, string>;
}

export interface CompositeUri {
  kind: 'composite';
  scheme: CompositeScheme;
  uris: ParsedUri[];
  options: Record<string, string>;
}

export type ParsedUri = BrokerUri | CompositeUri;

export const COMPOSITE_SCHEMES = ['failover', 'static', 'masterslave'] as const;
export type CompositeScheme = (typeof COMPOSITE_SCHEMES)[number];

/** Simple schemes and their default ports (multicast: ActiveMQ's 239.255.2.3:6155 discovery default). */
export const DEFAULT_PORTS: Readonly<Record<string, number>> = Object.freeze({
  tcp: 61616,
  stomp: 61613,
  /** TLS transports, ActiveMQ's ports: `ssl://` (native over TLS) and `stomp+ssl://`. */
  ssl: 61617,
  'stomp+ssl': 61612,
  multicast: 6155,
});

export interface UriParseOptions {
  /** Simple schemes accepted and their default ports; defaults to DEFAULT_PORTS. */
  defaultPorts?: Readonly<Record<string, number>>;
}

const MAX_DEPTH = 8;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;
const HOST = /^[A-Za-z0-9._~-]+$/;
const IPV6 = /^[0-9A-Fa-f:.]+(%[A-Za-z0-9._~-]+)?$/;
const FORBIDDEN_OPTION_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

/** Quote a URI in an error message without the values of secret-looking options. */
function shown(text: string): string {
  return JSON.stringify(text.replace(/((?:password|passcode|secret|token)[^=&?,()]*=)([^&,()]*)/gi, '$1***'));
}

function bad(text: string, why: string): never {
  throw new InvalidArgumentError(`invalid broker URI ${shown(text)}: ${why}`);
}

function isComposite(scheme: string): scheme is CompositeScheme {
  return (COMPOSITE_SCHEMES as readonly string[]).includes(scheme);
}

/** Parse `a=1&b=2` (percent-decoded); duplicate or empty option names are errors. */
export function parseUriOptions(query: string, text = query): Record<string, string> {
  const options: Record<string, string> = {};
  if (query.length === 0) return options;
  for (const part of query.split('&')) {
    if (part.length === 0) continue;
    const eq = part.indexOf('=');
    if (eq === -1) bad(text, `option "${part}" has no value (expected ${part}=VALUE)`);
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(part.slice(0, eq));
      value = decodeURIComponent(part.slice(eq + 1));
    } catch {
      bad(text, `bad percent-encoding in option "${part.slice(0, eq)}"`);
    }
    if (name.length === 0) bad(text, `option with an empty name ("${part}")`);
    if (FORBIDDEN_OPTION_NAMES.has(name)) bad(text, `"${name}" is not a valid option name`);
    if (Object.hasOwn(options, name)) bad(text, `duplicate option "${name}"`);
    options[name] = value;
  }
  return options;
}

/** Split at the commas that are not inside parentheses. */
function splitMembers(list: string, text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < list.length; i++) {
    const c = list[i];
    if (c === '(') depth++;
    else if (c === ')') {
      if (--depth < 0) bad(text, 'unbalanced parentheses (")" without "(")');
    } else if (c === ',' && depth === 0) {
      out.push(list.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) bad(text, 'unbalanced parentheses ("(" without ")")');
  out.push(list.slice(start));
  return out.map((m) => m.trim());
}

function parseSimple(
  scheme: string,
  rest: string,
  text: string,
  ports: Readonly<Record<string, number>>,
): BrokerUri {
  const defaultPort = Object.hasOwn(ports, scheme) ? ports[scheme] : undefined;
  if (defaultPort === undefined) {
    bad(
      text,
      `unknown scheme "${scheme}" (expected one of ${[...Object.keys(ports), ...COMPOSITE_SCHEMES].join(', ')})`,
    );
  }
  if (!rest.startsWith('//')) bad(text, `expected "${scheme}://HOST:PORT"`);
  const q = rest.indexOf('?');
  const main = q === -1 ? rest.slice(2) : rest.slice(2, q);
  const options = parseUriOptions(q === -1 ? '' : rest.slice(q + 1), text);
  if (/[()]/.test(main)) bad(text, 'unexpected parentheses');
  if (main.includes(',')) bad(text, 'unexpected "," (a list of URIs needs failover:(…) or static:(…))');

  let authority = main;
  const slash = main.indexOf('/');
  if (slash !== -1) {
    if (main.slice(slash) !== '/') bad(text, `unexpected path "${main.slice(slash)}"`);
    authority = main.slice(0, slash);
  }

  let host: string;
  let portText: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) bad(text, 'unterminated IPv6 address (missing "]")');
    host = authority.slice(1, close);
    if (!IPV6.test(host) || !host.includes(':')) bad(text, `invalid IPv6 address "${host}"`);
    const after = authority.slice(close + 1);
    if (after.length > 0) {
      if (!after.startsWith(':')) bad(text, `unexpected "${after}" after the IPv6 address`);
      portText = after.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    host = colon === -1 ? authority : authority.slice(0, colon);
    if (colon !== -1) portText = authority.slice(colon + 1);
    if (host.length === 0) bad(text, 'missing host');
    if (host.includes('@'))
      bad(
        text,
        'user information in the URI is not supported (use the username/password options of the client)',
      );
    if (!HOST.test(host)) bad(text, `invalid host "${host}"`);
  }

  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      bad(text, `bad port "${portText}" (expected 1..65535)`);
    }
    port = Number(portText);
  }
  return { kind: 'broker', scheme, host, port, options };
}

function parse(
  text: string,
  whole: string,
  depth: number,
  ports: Readonly<Record<string, number>>,
): ParsedUri {
  if (depth > MAX_DEPTH) bad(whole, `composite URIs nested more than ${MAX_DEPTH} deep`);
  const m = SCHEME.exec(text);
  if (m === null)
    bad(
      whole,
      text.length === 0 ? 'empty URI' : `missing scheme in "${text}" (expected e.g. tcp://HOST:PORT)`,
    );
  const scheme = m[1]!.toLowerCase();
  let rest = text.slice(m[0].length);
  if (!isComposite(scheme)) return parseSimple(scheme, rest, whole, ports);

  // failover://(…) is accepted as well as failover:(…).
  if (rest.startsWith('//')) rest = rest.slice(2);
  let list: string;
  let options: Record<string, string> = {};
  if (rest.startsWith('(')) {
    let depthHere = 0;
    let close = -1;
    for (let i = 0; i < rest.length; i++) {
      if (rest[i] === '(') depthHere++;
      else if (rest[i] === ')' && --depthHere === 0) {
        close = i;
        break;
      }
    }
    if (close === -1) bad(whole, 'unbalanced parentheses ("(" without ")")');
    list = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after.length > 0) {
      if (!after.startsWith('?')) bad(whole, `unexpected "${after}" after ")" (expected "?option=value")`);
      if (/[()]/.test(after)) bad(whole, 'unbalanced parentheses (")" without "(")');
      options = parseUriOptions(after.slice(1), whole);
    }
  } else {
    list = rest;
  }
  if (list.trim().length === 0) bad(whole, `empty list of URIs in ${scheme}:`);
  const members = splitMembers(list, whole);
  const uris = members.map((member, i) => {
    if (member.length === 0) bad(whole, `empty URI at position ${i + 1} of the ${scheme}: list`);
    return parse(member, whole, depth + 1, ports);
  });
  return { kind: 'composite', scheme, uris, options };
}

/** Parse any broker URI, simple or composite. Throws InvalidArgumentError naming the problem. */
export function parseUri(text: string, options: UriParseOptions = {}): ParsedUri {
  if (typeof text !== 'string')
    throw new InvalidArgumentError(`broker URI must be a string, got ${typeof text}`);
  return parse(text.trim(), text, 0, options.defaultPorts ?? DEFAULT_PORTS);
}

/** Parse a simple URI (`tcp://host:port?options`); a composite URI is an error. */
export function parseBrokerUri(text: string, options?: UriParseOptions): BrokerUri {
  const uri = parseUri(text, options);
  if (uri.kind !== 'broker') bad(text, `expected a single broker URI, not a ${uri.scheme}: composite`);
  return uri;
}

/** Parse a composite URI (`failover:(…)`, `static:(…)`, `masterslave:(…)`); a simple URI is an error. */
export function parseCompositeUri(text: string, options?: UriParseOptions): CompositeUri {
  const uri = parseUri(text, options);
  if (uri.kind !== 'composite') {
    bad(
      text,
      `expected a composite URI (${COMPOSITE_SCHEMES.map((s) => `${s}:(…)`).join(', ')}); use parseUri for either form`,
    );
  }
  return uri;
}

/** encodeURIComponent leaves ( ) ! * ' alone; parentheses would break composite URIs. */
function encodePart(s: string): string {
  return encodeURIComponent(s).replace(/[()!*']/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function formatOptions(options: Record<string, string>): string {
  const parts = Object.entries(options).map(([k, v]) => `${encodePart(k)}=${encodePart(v)}`);
  return parts.length === 0 ? '' : `?${parts.join('&')}`;
}

/** The canonical text of a parsed URI (explicit ports, parentheses); parseUri(formatUri(u)) equals u. */
export function formatUri(uri: ParsedUri): string {
  if (uri.kind === 'broker') {
    const host = uri.host.includes(':') ? `[${uri.host}]` : uri.host;
    return `${uri.scheme}://${host}:${uri.port}${formatOptions(uri.options)}`;
  }
  return `${uri.scheme}:(${uri.uris.map(formatUri).join(',')})${formatOptions(uri.options)}`;
}
