/**
 * Every case module of the suite. Importing a module registers its cases; add a file here
 * (e.g. `import "./plexus-lat.js";`) to add cases. Floors first: they are the baselines and
 * set the order of the variants.
 * @module
 */
import "./eventfd-floor.js";
import "./memcpy-floor.js";
import "./unix-socket.js";
import "./tcp-loopback.js";
import "./worker-postmessage.js";
import "./zeromq-ipc.js";
import "./thread-postmessage.js";
import "./plexus-shm.js";
import "./plexus-thread.js";
import "./plexus-pubsub.js";
import "./tcp-fanout.js";
import "./zerobuffer.js";
import "./plexus-tcp.js";
import "./plexus-rpc.js";
import "./iops.js";
import "./nats.js";
import "./paced.js";
import "./path.js";
import "./python.js";
import "./nats-pubsub.js";
import "./pipeline.js";
