import { conformance } from "./conformance/suite.js";
import type { Sender } from "../src/index.js";
import { connectTcp, TcpSender } from "../src/transport/tcp.js";

conformance("tcp", {
  sender: async (opts) => TcpSender.create(opts),
  receiver: async (sender: Sender, opts) => connectTcp((sender as TcpSender).address, opts),
});
