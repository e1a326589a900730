/**
 * Transports: the `Sender`/`Receiver` interface and the ring-backed `thread` and `shm`
 * implementations.
 * @module
 */
export type { BackpressurePolicy, Frame, Loan, Receiver, ReceiverOptions, RingSenderOptions, Sender, TransportKind } from "./transport.js";
export { InprocSender, connectInproc } from "./inproc.js";
export { ThreadSender, connectThread, type ThreadEndpoint } from "./thread.js";
export { ShmSender, connectShm, sweepStaleSegments, type ShmAddress, type ShmConnectOptions } from "./shm.js";
export { TcpSender, connectTcp, type TcpAddress, type TcpConnectOptions, type TcpSenderOptions, type TcpTlsOptions } from "./tcp.js";
