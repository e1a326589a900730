import { conformance } from "./conformance/suite.js";
import { connectThread, ThreadSender, type Sender } from "../src/index.js";

conformance("thread", {
  sender: async (opts) => ThreadSender.create(opts),
  receiver: async (sender: Sender, opts) => connectThread((sender as ThreadSender).endpoint().endpoint, opts),
});
