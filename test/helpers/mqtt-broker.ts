/**
 * MQTT brokers for the queue tests, the chaos driver and the bench: `aedes` in this process, or
 * a real `mosquitto` ({@link ./mosquitto.ts}); both on a free loopback port, with the same
 * handle.
 */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { Aedes } from "aedes";

/** A running broker: its `mqtt://` url, a restart on the same port, and a close that drops its clients. */
export interface TestBroker {
  /** `mqtt://127.0.0.1:PORT`. */
  readonly url: string;
  /** Which broker this is ("aedes", "mosquitto"). */
  readonly kind: string;
  /** Stops the broker (its clients' connections drop), waits `downMs`, starts it again on the same port with no state. */
  restart(downMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** One aedes broker listening on `port` (0: any); its port and a stop that drops its clients. */
async function startAedes(port: number): Promise<{ port: number; stop(): Promise<void> }> {
  const b = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const tcp: Server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    b.handle(s);
  });
  await new Promise<void>((r) => tcp.listen(port, "127.0.0.1", r));
  return {
    port: (tcp.address() as AddressInfo).port,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        tcp.close(() => b.close(() => r()));
      }),
  };
}

/** Starts an aedes broker on 127.0.0.1 on a free port. */
export async function mqttBroker(): Promise<TestBroker> {
  let current = await startAedes(0);
  const port = current.port;
  let stopped = false;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    kind: "aedes",
    async restart(downMs = 0) {
      await current.stop();
      await new Promise((r) => setTimeout(r, downMs));
      current = await startAedes(port);
    },
    async close() {
      if (stopped) return;
      stopped = true;
      await current.stop();
    },
  };
}
