import {
  AuthError,
  type Destination,
  formatDestination,
  InvalidArgumentError,
  isWildcard,
} from '@keel/protocol';
import { patternCovers } from './destination-pattern';

/**
 * ActiveMQ's three rights (authorizationEntry `read`, `write`, `admin`): read — consume, browse,
 * subscribe (durable or not); write — send; admin — create the destination.
 */
export type AuthorizationRight = 'read' | 'write' | 'admin';
export const AUTHORIZATION_RIGHTS: readonly AuthorizationRight[] = Object.freeze(['read', 'write', 'admin']);

/** Groups: ActiveMQ's comma-separated string (`"producers,consumers"`) or a list. */
export type GroupList = string | readonly string[];

/** ActiveMQ's authorizationEntry: `{queue: "orders.>", read: "consumers", write: "producers", admin: ...}`. */
export interface AuthorizationEntryOptions {
  queue?: string;
  topic?: string;
  read?: GroupList;
  write?: GroupList;
  admin?: GroupList;
}

/** ActiveMQ's tempDestinationAuthorizationEntry: the rights on every temporary queue and topic. */
export interface TempDestinationAuthorizationOptions {
  read?: GroupList;
  write?: GroupList;
  admin?: GroupList;
}

export interface AuthorizationMapOptions {
  entries: readonly AuthorizationEntryOptions[];
  /** Absent: temporary destinations may not be created or used (as in ActiveMQ without the entry). */
  tempDestinations?: TempDestinationAuthorizationOptions | null;
  /** The groups of an authenticated user (unknown user: none). */
  groupsOf?: (user: string) => readonly string[];
}

interface Entry {
  kind: 'queue' | 'topic';
  pattern: string;
  rights: Record<AuthorizationRight, ReadonlySet<string>>;
}

/** What an operation needs, for the refusal's wording. */
const VERBS: Record<AuthorizationRight, string> = {
  read: 'read from',
  write: 'write to',
  admin: 'create',
};

/**
 * ActiveMQ's DefaultAuthorizationMap: the groups allowed a right on a destination are the union of
 * that right's groups over every entry whose pattern covers the destination; a destination no entry
 * covers allows nothing. Temporary destinations take their rights from the temp entry alone.
 */
export class AuthorizationMap {
  private readonly entries: Entry[];
  private readonly temp: Record<AuthorizationRight, ReadonlySet<string>> | null;
  private readonly groupsOf: (user: string) => readonly string[];

  constructor(options: AuthorizationMapOptions) {
    if (!options || !Array.isArray(options.entries)) {
      throw new InvalidArgumentError('AuthorizationMap: option entries must be a list');
    }
    this.entries = options.entries.map((e, i) => toEntry(e, i));
    this.temp = options.tempDestinations ? rightsOf(options.tempDestinations, 'tempDestinations') : null;
    this.groupsOf = options.groupsOf ?? (() => []);
  }

  /** The groups allowed `right` on `dest` (queue://x, topic://y, temp-queue://…, temp-topic://…). */
  allowedGroups(right: AuthorizationRight, dest: Destination): ReadonlySet<string> {
    if (dest.type === 'temp-queue' || dest.type === 'temp-topic') return this.temp?.[right] ?? new Set();
    const kind = dest.type === 'queue' ? 'queue' : 'topic';
    const out = new Set<string>();
    for (const e of this.entries) {
      if (e.kind !== kind || !patternCovers(e.pattern, dest.name)) continue;
      for (const g of e.rights[right]) out.add(g);
    }
    return out;
  }

  /** Whether one of `groups` has `right` on `dest`. */
  allows(groups: readonly string[], right: AuthorizationRight, dest: Destination): boolean {
    const allowed = this.allowedGroups(right, dest);
    return groups.some((g) => allowed.has(g));
  }

  /**
   * Throws NOT_AUTHORIZED naming the user, the destination and the missing right unless `user`
   * (undefined: an unauthenticated connection, which has no groups) has `right` on `dest`.
   */
  check(user: string | undefined, right: AuthorizationRight, dest: Destination): void {
    const groups = user === undefined ? [] : this.groupsOf(user);
    if (this.allows(groups, right, dest)) return;
    const what = formatDestination(dest);
    const who = user === undefined ? 'an anonymous connection' : `user ${user}`;
    const wildcard = isWildcard(dest.name)
      ? ' (a wildcard needs an entry covering every name it matches)'
      : '';
    throw new AuthError(
      `${who} is not authorized to ${VERBS[right]} ${what}: the ${right} right is missing${wildcard}`,
      'NOT_AUTHORIZED',
    );
  }
}

function toEntry(e: AuthorizationEntryOptions, i: number): Entry {
  const at = `authorization[${i}]`;
  if (!e || typeof e !== 'object') throw new InvalidArgumentError(`${at} must be an object`);
  if ((e.queue === undefined) === (e.topic === undefined)) {
    throw new InvalidArgumentError(`${at} must name exactly one of queue and topic`);
  }
  const pattern = (e.queue ?? e.topic) as string;
  if (typeof pattern !== 'string' || pattern.trim() === '' || /\s/.test(pattern)) {
    throw new InvalidArgumentError(`${at}: the destination pattern must be a name without spaces`);
  }
  const segs = pattern.split('.');
  if (segs.some((s) => s === '') || segs.slice(0, -1).includes('>')) {
    throw new InvalidArgumentError(
      `${at}: invalid pattern ${JSON.stringify(pattern)} (segments separated by '.', '>' only as the last one)`,
    );
  }
  return { kind: e.queue !== undefined ? 'queue' : 'topic', pattern, rights: rightsOf(e, at) };
}

function rightsOf(
  e: Partial<Record<AuthorizationRight, GroupList>>,
  at: string,
): Record<AuthorizationRight, ReadonlySet<string>> {
  const out = {} as Record<AuthorizationRight, ReadonlySet<string>>;
  for (const right of AUTHORIZATION_RIGHTS) out[right] = new Set(groupList(e[right], `${at}.${right}`));
  return out;
}

/** `"a, b"` or `["a", "b"]` → `['a', 'b']`. */
export function groupList(value: GroupList | undefined, at = 'groups'): string[] {
  if (value === undefined || value === null) return [];
  const items = typeof value === 'string' ? value.split(',') : value;
  if (!Array.isArray(items) || items.some((g) => typeof g !== 'string')) {
    throw new InvalidArgumentError(`${at} must be a comma-separated string or a list of group names`);
  }
  return items.map((g) => g.trim()).filter((g) => g.length > 0);
}
