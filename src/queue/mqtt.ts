/**
 * The MQTT backend: queue frames carried through an MQTT broker. The server subscribes to
 * `plexus/q/<name>/s`, each client to `plexus/q/<name>/c/<client id>`; every MQTT message
 * (QoS 0, or 1 with `?qos=1`) is the sender's 16-byte identity, the 8-byte session token of the
 * client session it belongs to, and exactly one queue frame. The server keeps one link per identity and token, so
 * a client that took an identity over and the client it displaced never see each other's
 * frames (a client drops what carries another token than its own). Handshake,
 * serials, acknowledgements and keep-alives are the same as over TCP, end to end: a put
 * resolves on the receiving endpoint's ACK, not on the broker's PUBACK. The broker's
 * redeliveries are dropped as duplicates by serial.
 *
 * Latency: the connection to the broker has `TCP_NODELAY`, and frames go at QoS 0 by default.
 * With QoS 1 the broker answers every message with a PUBACK and, later, sends the peer's answer
 * on the same connection; a broker that leaves Nagle's algorithm on (mosquitto's default,
 * aedes) holds that second small write until the PUBACK is acknowledged, which the receiving
 * kernel delays by up to 40 ms: about 40 ms per acknowledged put. The queue's own ACKs make the
 * broker's redundant. Requires the `mqtt` package (an optional peer
 * dependency, loaded on first use).
 * (Internal: not part of the public API.)
 * @module
 */
import { PeerDeadError } from "../errors.js";
import { loadOptionalPeer } from "../util/optional-peer.js";
import { receiveMessage, type Link, type LinkEvents } from "./link.js";
import type { QueueUrl } from "./options.js";
import type { TcpTlsOptions } from "../transport/tcp-receiver.js";
import { frameTable, IDENTITY_BYTES, TOKEN_BYTES } from "./wire.js";
import type { FrameTable } from "../net/frame-parser.js";
import type { Liveness } from "../net/liveness.js";

/** Bytes before the frame in every MQTT message: the sender's identity and the session token. */
const ENVELOPE_BYTES = IDENTITY_BYTES + TOKEN_BYTES;

/** The part of an mqtt.js client this backend uses. */
interface MqttClientLike {
  on(event: "message", cb: (topic: string, payload: Buffer) => void): unknown;
  on(event: "connect", cb: () => void): unknown;
  on(event: "error", cb: (err: Error) => void): unknown;
  subscribeAsync(topic: string, opts: { qos: 0 | 1 | 2 }): Promise<unknown>;
  publish(topic: string, payload: Buffer, opts: { qos: 0 | 1 | 2 }, cb?: (err?: Error) => void): unknown;
  endAsync(force?: boolean): Promise<void>;
  /** The current connection to the broker (a new one after each reconnection). */
  readonly stream?: { setNoDelay?(noDelay?: boolean): unknown };
}

/** Turns Nagle's algorithm off on the client's current connection (see the module text). */
function noDelay(client: MqttClientLike): void {
  client.stream?.setNoDelay?.(true);
}

/** Topic prefix of queue `name`. */
export function topicPrefix(name: string): string {
  return `plexus/q/${name}`;
}

/** The server's key of a client's link: its identity and session token (hex). */
export function linkKey(identity: string, token: Buffer): string {
  return `${identity}:${token.toString("hex")}`;
}

/** One peer reached through the broker. */
export class MqttLink implements Link {
  closed = false;
  private events: LinkEvents | undefined;
  private readonly closedWaiters: (() => void)[] = [];
  private readonly table: FrameTable;

  constructor(
    private readonly hub: MqttHub,
    /** Topic this link publishes to. */
    readonly topic: string,
    /** The hub's key of this link (the server's: the client's identity and token, hex). */
    readonly peer: string,
    maxMessage: number,
    /** The session token of the client session this link carries (in every message it publishes). */
    readonly token: Buffer,
    /** Heartbeats and the peer's silence. */
    readonly liveness: Liveness,
  ) {
    this.table = frameTable(maxMessage);
  }

  bind(events: LinkEvents): void {
    this.events = events;
  }

  whenClosed(): Promise<void> {
    return this.closed ? Promise.resolve() : new Promise((r) => this.closedWaiters.push(r));
  }

  write(chunks: readonly Uint8Array[]): void {
    if (this.closed) return;
    this.hub.publish(this.topic, this.token, chunks);
    this.liveness.sent();
  }

  /** One MQTT message from the peer (identity and token already stripped). */
  receive(frame: Buffer): void {
    receiveMessage(this, this.table, this.events, frame, "MQTT message");
  }

  end(): void {
    this.finish(undefined);
  }

  destroy(): void {
    this.finish(undefined);
  }

  fail(err: Error): void {
    this.finish(err);
  }

  private finish(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.forget(this);
    this.events?.gone(err);
    for (const w of this.closedWaiters.splice(0)) w();
  }
}

/** One endpoint's MQTT connection: publishes frames, routes incoming ones to links. */
export class MqttHub {
  private readonly links = new Map<string, MqttLink>();
  /**
   * Called for a message from a peer without a link (server: a new client, or a new session
   * of a client: `identity` in hex, `token` a view of the message).
   */
  onUnknown: ((identity: string, token: Buffer, frame: Buffer) => void) | undefined;
  /**
   * Called when the broker connection came back after a loss: frames published to this end
   * meanwhile are gone (clean sessions), so the client handshakes again and both sides resend
   * what is unacknowledged.
   */
  onReconnect: (() => void) | undefined;

  private constructor(
    private readonly client: MqttClientLike,
    readonly identity: Buffer,
    readonly prefix: string,
    /** QoS of the messages this end publishes. */
    private readonly qos: 0 | 1,
    /**
     * A client's session token: messages that carry another one are not for this client (the
     * client sets a new one when it starts a new session).
     */
    public token: Buffer | undefined,
  ) {}

  /**
   * Connects to the broker of `url` and subscribes to `inbox` (a topic under the prefix).
   * `token` (a client's session token) is part of the MQTT client id, so two client objects
   * with the same identity are two broker clients. Rejects with `PeerDeadError` if the broker
   * cannot be reached, `MissingDependencyError` if the `mqtt` package is missing.
   */
  static async connect(
    url: QueueUrl,
    tls: TcpTlsOptions | undefined,
    identity: Buffer,
    inbox: string,
    connectTimeout: number,
    token?: Buffer,
  ): Promise<MqttHub> {
    const mqtt = await loadOptionalPeer<typeof import("mqtt")>("mqtt", "mqtt:// and mqtts:// queue URLs");
    const host = url.host.includes(":") ? `[${url.host}]` : url.host;
    const brokerUrl = `${url.scheme}://${host}:${url.port}`;
    let client: MqttClientLike;
    try {
      client = (await mqtt.connectAsync(brokerUrl, {
        clientId: `plexus-${identity.toString("hex")}${token ? `-${token.toString("hex")}` : ""}`,
        clean: true,
        connectTimeout,
        reconnectPeriod: 200,
        ...(tls ?? {}),
      } as Parameters<typeof mqtt.connectAsync>[1])) as unknown as MqttClientLike;
    } catch (err) {
      throw new PeerDeadError(`cannot reach the MQTT broker at ${brokerUrl}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const prefix = topicPrefix(url.name);
    const hub = new MqttHub(client, identity, prefix, url.qos, token);
    client.on("error", () => {}); // mqtt.js reconnects; silence is caught by the queue's keep-alives
    client.on("message", (topic, payload) => hub.route(topic, payload));
    noDelay(client);
    client.on("connect", () => {
      noDelay(client);
      hub.onReconnect?.(); // the first connect happened before this listener
    });
    await client.subscribeAsync(`${prefix}/${inbox}`, { qos: 1 });
    return hub;
  }

  /**
   * A link keyed `peer` (the server's: {@link linkKey}) publishing to `topic` (a topic under
   * the prefix), carrying the client session `token`.
   */
  link(peer: string, topic: string, maxMessage: number, token: Buffer, liveness: Liveness): MqttLink {
    this.links.get(peer)?.destroy();
    const l = new MqttLink(this, `${this.prefix}/${topic}`, peer, maxMessage, token, liveness);
    this.links.set(peer, l);
    return l;
  }

  /** @internal */
  forget(l: MqttLink): void {
    if (this.links.get(l.peer) === l) this.links.delete(l.peer);
  }

  /** @internal */
  publish(topic: string, token: Buffer, chunks: readonly Uint8Array[]): void {
    const parts: Uint8Array[] = [this.identity, token, ...chunks];
    this.client.publish(topic, Buffer.concat(parts), { qos: this.qos }, () => {});
  }

  private route(_topic: string, payload: Buffer): void {
    if (payload.length < ENVELOPE_BYTES) return; // not ours
    const token = payload.subarray(IDENTITY_BYTES, ENVELOPE_BYTES);
    if (this.token !== undefined && !token.equals(this.token)) return; // another client object's session
    const identity = payload.toString("hex", 0, IDENTITY_BYTES);
    const frame = payload.subarray(ENVELOPE_BYTES);
    const l = this.links.get(linkKey(identity, token));
    if (l !== undefined) l.receive(frame);
    else this.onUnknown?.(identity, token, frame);
  }

  /** Drops every link and disconnects from the broker. */
  async close(): Promise<void> {
    for (const l of [...this.links.values()]) l.destroy();
    await this.client.endAsync(false).catch(() => {});
  }

  /** Links currently open. */
  all(): Iterable<MqttLink> {
    return this.links.values();
  }
}
