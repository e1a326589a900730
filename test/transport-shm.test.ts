import { conformance } from "./conformance/suite.js";
import { connectShm, ShmSender, type Sender } from "../src/index.js";

conformance("shm", {
  sender: async (opts) => ShmSender.create(opts),
  receiver: async (sender: Sender, opts) => connectShm((sender as ShmSender).address, opts),
});
