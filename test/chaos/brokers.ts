/** What the chaos driver hosts itself: a GraphServer, an MQTT broker, test TLS material, free ports. */
import { createServer, type AddressInfo } from "node:net";
import { GraphServer } from "../../src/index.js";
import { testCerts } from "../helpers/tcp-certs.js";

export { mqttBroker } from "../helpers/mqtt-broker.js";

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
