/** What the chaos driver hosts itself: a GraphServer, an MQTT broker, test TLS material, free ports. */
import { GraphServer } from "../../src/index.js";
import { testCerts } from "../helpers/tcp-certs.js";

export { mqttBroker } from "../helpers/mqtt-broker.js";
export { freePort } from "../helpers/free-port.js";

/** A GraphServer on a free port; its address. */
export async function graphServer(): Promise<{ address: string; close(): Promise<void> }> {
  const server = await GraphServer.start({ port: 0 });
  return { address: `127.0.0.1:${server.address.port}`, close: () => server.close() };
}

/** Server key and certificate for 127.0.0.1 and the CA that signed them. */
export function tlsMaterial(): { ca: string; key: string; cert: string } {
  const c = testCerts();
  return { ca: c.ca, key: c.serverKey, cert: c.serverCert };
}
