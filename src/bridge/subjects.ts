/**
 * How Plexus names travel as NATS subjects (docs/scale-out.md, *Subjects*), and the topic
 * patterns of the bridge's allow and deny lists. Pure functions, no I/O.
 *
 * A name (a topic, a service, a queue) is split at `/` into segments; each segment becomes one
 * subject token, escaped so that it holds none of NATS's separators and wildcards: `~` is the
 * escape character, and `~`, `.`, `*`, `>` and a `$` at the start of a token are written as `~`
 * and two hex digits of their code (`~7E`, `~2E`, `~2A`, `~3E`, `~24`); an empty segment (a
 * leading, trailing or doubled `/`) is the token `~`. Topics hold no whitespace, so no escape is
 * needed for it. The mapping is reversible: {@link nameFromTokens} undoes {@link nameTokens}.
 * @module
 */
import { InvalidArgumentError } from "../errors.js";

/** What a subject carries: a topic's messages, a service's requests, a queue's puts, or a host's announcements. */
export type SubjectKind = "t" | "s" | "q" | "h";

const ESCAPED = /[~.*>]/g;
const UNESCAPE = /~([0-9A-F]{2})/g;

/** One name segment as a subject token. */
function escapeToken(segment: string): string {
  if (segment === "") return "~";
  const t = segment.replace(ESCAPED, (c) => `~${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return t.startsWith("$") ? `~24${t.slice(1)}` : t;
}

/** A subject token back to the name segment (an {@link InvalidArgumentError} if it is not one {@link escapeToken} makes). */
function unescapeToken(token: string): string {
  if (token === "~") return "";
  const s = token.replace(UNESCAPE, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  if (escapeToken(s) !== token) throw new InvalidArgumentError(`subject token ${JSON.stringify(token)} is not an escaped name segment`);
  return s;
}

/** The subject tokens of a name. */
export function nameTokens(name: string): string[] {
  return name.split("/").map(escapeToken);
}

/** The name a subject's tokens stand for (inverse of {@link nameTokens}). */
export function nameFromTokens(tokens: readonly string[]): string {
  return tokens.map(unescapeToken).join("/");
}

/** Checks a subject prefix: one or more tokens of letters, digits, `_` and `-`, separated by dots. */
export function checkPrefix(prefix: string): string {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix)) {
    throw new InvalidArgumentError(`a subject prefix is dot-separated tokens of letters, digits, "_" and "-", got ${JSON.stringify(prefix)}`);
  }
  return prefix;
}

/** The subject of a name: `<prefix>.<kind>.<escaped segments>`. */
export function subjectOf(prefix: string, kind: SubjectKind, name: string): string {
  return `${prefix}.${kind}.${nameTokens(name).join(".")}`;
}

/**
 * The name a subject carries, if it is a subject of `kind` under `prefix`; `undefined` for any
 * other subject, or one whose tokens are not escaped names.
 */
export function nameOfSubject(prefix: string, kind: SubjectKind, subject: string): string | undefined {
  const head = `${prefix}.${kind}.`;
  if (!subject.startsWith(head)) return undefined;
  try {
    return nameFromTokens(subject.slice(head.length).split("."));
  } catch {
    return undefined;
  }
}

/**
 * A name pattern of the allow and deny lists: segments separated by `/`, where a segment `*`
 * matches any one segment and a last segment `>` matches one or more (as in NATS); any other
 * segment matches itself. `camera/*` matches `camera/front`, `sensors/>` every name under
 * `sensors/`, `>` every name.
 */
export class NamePattern {
  private readonly segments: readonly string[];

  /** @param text - the pattern (an {@link InvalidArgumentError} if `>` is not its last segment or it is empty) */
  constructor(readonly text: string) {
    if (typeof text !== "string" || text.length === 0 || /\s/.test(text)) throw new InvalidArgumentError(`a name pattern is a non-empty string without spaces, got ${JSON.stringify(text)}`);
    this.segments = text.split("/");
    if (this.segments.slice(0, -1).includes(">")) throw new InvalidArgumentError(`">" may only be the last segment of a name pattern, got ${JSON.stringify(text)}`);
  }

  /** True if `name` matches. */
  matches(name: string): boolean {
    const parts = name.split("/");
    const pat = this.segments;
    for (let i = 0; i < pat.length; i++) {
      if (pat[i] === ">") return parts.length > i;
      if (i >= parts.length || (pat[i] !== "*" && pat[i] !== parts[i])) return false;
    }
    return parts.length === pat.length;
  }

  /** True if every name `other` matches, this pattern matches too. */
  covers(other: NamePattern): boolean {
    const p = this.segments;
    const q = other.segments;
    for (let i = 0; i < q.length; i++) {
      if (i >= p.length) return false;
      if (p[i] === ">") return true;
      if (q[i] === ">") return false;
      if (p[i] !== "*" && p[i] !== q[i]) return false;
    }
    return p.length === q.length;
  }

  /** True if some name matches both patterns. */
  overlaps(other: NamePattern): boolean {
    const p = this.segments;
    const q = other.segments;
    for (let i = 0; ; i++) {
      if (i >= p.length || i >= q.length) return p.length === q.length;
      if (p[i] === ">" || q[i] === ">") return true;
      if (p[i] !== "*" && q[i] !== "*" && p[i] !== q[i]) return false;
    }
  }

  /** The NATS subject (with wildcards) of every name this pattern matches, under `prefix` and `kind`. */
  subject(prefix: string, kind: SubjectKind): string {
    return `${prefix}.${kind}.${this.segments.map((s) => (s === "*" || s === ">" ? s : escapeToken(s))).join(".")}`;
  }
}

/**
 * An allow list and a deny list: a name passes if some allow pattern matches it and no deny
 * pattern does. An empty allow list lets nothing through (nothing is bridged that the allow
 * list does not name).
 */
export class NameFilter {
  /** The allow patterns. */
  readonly allow: readonly NamePattern[];
  /** The deny patterns. */
  readonly deny: readonly NamePattern[];

  constructor(allow: readonly string[] = [], deny: readonly string[] = []) {
    this.allow = allow.map((p) => new NamePattern(p));
    this.deny = deny.map((p) => new NamePattern(p));
  }

  /** True if `name` is allowed and not denied. */
  passes(name: string): boolean {
    return this.allow.some((p) => p.matches(name)) && !this.deny.some((p) => p.matches(name));
  }

  /**
   * The NATS subjects to subscribe to for the allow list, such that no message is delivered
   * twice: patterns another one covers are left out, and when two overlap without one covering
   * the other, the single subject of every name (`<prefix>.<kind>.>`) is used (what is received
   * is then filtered by {@link passes}).
   */
  subjects(prefix: string, kind: SubjectKind): string[] {
    const kept = this.allow.filter((p, i) => !this.allow.some((q, j) => j !== i && q.covers(p) && (!p.covers(q) || j < i)));
    const clash = kept.some((p, i) => kept.some((q, j) => j > i && p.overlaps(q)));
    return clash ? [`${prefix}.${kind}.>`] : kept.map((p) => p.subject(prefix, kind));
  }

  /** True if nothing can pass. */
  get empty(): boolean {
    return this.allow.length === 0;
  }
}
