import { conformance } from "./conformance/suite.js";
import { connectInproc, InprocSender, type Sender } from "../src/index.js";

conformance("inproc", {
  sender: async (opts) => InprocSender.create(opts),
  receiver: async (sender: Sender, opts) => connectInproc(sender as InprocSender, opts),
});
