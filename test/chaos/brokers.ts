/** What the chaos driver hosts itself: a GraphServer, an MQTT broker, test TLS material, free ports. */
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { Aedes } from "aedes";
import { GraphServer } from "../../src/index.js";
import { testCerts } from "../helpers/tcp-certs.js";

/** An MQTT broker (aedes) on a free loopback port. */
export async function mqttBroker(): Promise<{ url: string; close(): Promise<void> }> {
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

/** A GraphServer on a free port; its address. */
export async function graphServer(): Promise<{ address: string; close(): Promise<void> }> {
  const server = await GraphServer.start({ port: 0 });
  return { address: `127.0.0.1:${server.address.port}`, close: () => server.close() };
}

/** A loopback port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Server key and certificate for 127.0.0.1 and the CA that signed them. */
export function tlsMaterial(): { ca: string; key: string; cert: string } {
  const c = testCerts();
  return { ca: c.ca, key: c.serverKey, cert: c.serverCert };
}
