/** An in-process MQTT broker (aedes) on a free loopback port, for the tests and the chaos driver. */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { Aedes } from "aedes";

/** A running broker: its `mqtt://` url and a close that drops its clients. */
export interface TestBroker {
  url: string;
  close(): Promise<void>;
}

/** Starts an aedes broker on 127.0.0.1 on a free port. */
export async function mqttBroker(): Promise<TestBroker> {
  const b = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const tcp: Server = createServer((s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    b.handle(s);
  });
  await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
  return {
    url: `mqtt://127.0.0.1:${(tcp.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        tcp.close(() => b.close(() => r()));
      }),
  };
}
