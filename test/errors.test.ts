// One error model: the hierarchy, instanceof across the ESM and CJS copies of the package, the
// registry that rebuilds errors from the wire, and the class users catch on each path that
// produces a documented error (in process and over the wire).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { once } from "node:events";
import * as esm from "../src/index.js";
import * as zb from "../src/zerobuffer/index.js";
import { errorFromWire, errorToWire, systemError } from "../src/errors.js";
import { GraphServer } from "../src/graph/server.js";
import { GraphClient, parseAddress } from "../src/graph/client.js";

const require = createRequire(import.meta.url);
const cjs = require("../cjs/index.js") as typeof esm;
const cjsZb = require("../cjs/zerobuffer/index.js") as typeof zb;

/** Every exported error class of a module namespace, by name. */
function errorClasses(ns: object): Map<string, typeof esm.PlexusError> {
  const out = new Map<string, typeof esm.PlexusError>();
  for (const [name, value] of Object.entries(ns)) {
    if (typeof value === "function" && (value === esm.PlexusError || value.prototype instanceof Error) && Object.hasOwn(value, "code")) {
      out.set(name, value as typeof esm.PlexusError);
    }
  }
  return out;
}

const classes = new Map([...errorClasses(esm), ...errorClasses(zb)]);

test("errors: every exported class has its own code and a fixed name, and is a PlexusError", () => {
  assert.ok(classes.size >= 28, `found ${classes.size} classes`);
  const codes = new Set<string>();
  for (const [name, C] of classes) {
    assert.match(C.code, /^ERR_PLEXUS(_[A-Z0-9]+)*$/, name);
    assert.ok(!codes.has(C.code), `${name}: code ${C.code} is used twice`);
    codes.add(C.code);
    const e = errorFromWire(C.code, "m");
    assert.equal(e.code, C.code, name);
    assert.equal(e.name, name, `${name} keeps its name`);
    assert.ok(e instanceof esm.PlexusError && e instanceof Error, name);
  }
});

test("errors: the specific extends the general", () => {
  const cases: [esm.PlexusError, (new (...a: never[]) => Error)[]][] = [
    [new zb.WriterDeadError("w"), [esm.PeerDeadError, esm.PlexusError, Error]],
    [new zb.ReaderDeadError("r"), [esm.PeerDeadError]],
    [new zb.HandlerError(3, "h"), [esm.RemoteError]],
    [new zb.BufferFullError("b"), [esm.BackpressureError]],
    [new zb.ProtocolVersionError(1, 2, "v"), [esm.ProtocolError]],
    [new zb.InvalidFrameSizeError("s"), [esm.ProtocolError]],
    [new esm.NoSpaceError("shm_open", "no space"), [esm.SystemError]],
    [new esm.MissingDependencyError("mqtt", "m"), [esm.InvalidArgumentError]],
  ];
  for (const [err, parents] of cases) {
    for (const P of parents) assert.ok(err instanceof P, `${err.name} is a ${P.name}`);
  }
  const w = new zb.WriterDeadError("w");
  assert.equal(w.code, "ERR_PLEXUS_ZB_WRITER_DEAD", "the specific keeps its own code");
  assert.equal(new zb.HandlerError(1, "x").remoteCode, "ERR_PLEXUS_HANDLER");
  // and not the other way round, nor sideways
  assert.ok(!(new esm.PeerDeadError() instanceof zb.WriterDeadError));
  assert.ok(!(new zb.WriterDeadError() instanceof zb.ReaderDeadError));
  assert.ok(!(new esm.TimeoutError() instanceof esm.AbortError));
});

test("errors: instanceof holds across the ESM and CJS copies of the package, both ways", () => {
  assert.notEqual(cjs.CycleError, esm.CycleError, "two copies of the classes are loaded");
  const fromCjs = new cjs.CycleError("a", "b");
  const fromEsm = new esm.CycleError("a", "b");
  assert.ok(fromCjs instanceof esm.CycleError && fromCjs instanceof esm.PlexusError);
  assert.ok(fromEsm instanceof cjs.CycleError && fromEsm instanceof cjs.PlexusError);
  assert.ok(!(fromCjs instanceof esm.NotFoundError) && !(fromEsm instanceof cjs.NotFoundError));
  assert.ok(new cjsZb.WriterDeadError() instanceof esm.PeerDeadError);
  assert.ok(new zb.WriterDeadError() instanceof cjs.PeerDeadError);
  assert.ok(!(new cjs.PeerDeadError() instanceof zb.WriterDeadError));
  for (const [name, C] of errorClasses(cjs)) {
    const E = classes.get(name);
    assert.ok(E, `${name} is exported by both copies`);
    assert.ok(errorFromWire(C.code, "m") instanceof C, `${name}: an ESM-made error is an instance of the CJS class`);
  }
});

test("errors: a class users derive keeps the ordinary instanceof", () => {
  class AppError extends esm.PlexusError {}
  const app = new AppError("mine", "ERR_APP");
  assert.ok(app instanceof AppError && app instanceof esm.PlexusError);
  assert.ok(!(new esm.PlexusError("x") instanceof AppError), "a plain PlexusError is not an AppError");
  assert.ok(!(new esm.TimeoutError() instanceof AppError));
  assert.equal(app.code, "ERR_APP");
  assert.ok(!({ code: "ERR_PLEXUS_TIMEOUT" } instanceof esm.TimeoutError), "a look-alike object is not an error");
  const values: unknown[] = [null, "x", 1, undefined];
  for (const v of values) assert.ok(!(v instanceof esm.PlexusError));
});

test("errors: the wire keeps class, code and message; unknown codes stay PlexusErrors with their code", () => {
  for (const C of classes.values()) {
    const sent = errorToWire(errorFromWire(C.code, "the text"));
    const back = errorFromWire(sent.code, sent.message);
    assert.ok(back instanceof C, C.code);
    assert.equal(back.message, "the text");
  }
  const unknown = errorFromWire("ERR_APP_SPECIAL", "custom");
  assert.equal(unknown.constructor, esm.PlexusError);
  assert.equal(unknown.code, "ERR_APP_SPECIAL");
  assert.equal(errorFromWire(42, undefined).code, "ERR_PLEXUS", "garbage becomes the fallback code");
  assert.equal(errorFromWire(undefined, "m", "ERR_PLEXUS_PROTOCOL").name, "ProtocolError");
  assert.deepEqual(errorToWire(new TypeError("plain")), { code: "ERR_PLEXUS", message: "plain" });
});

test("errors: system errors are wrapped with their cause; ENOSPC is a NoSpaceError", () => {
  const node = Object.assign(new Error("listen EADDRINUSE: address already in use"), { code: "EADDRINUSE", errno: -98, syscall: "listen" });
  const e = systemError(node, "bind", "127.0.0.1:1");
  assert.ok(e instanceof esm.SystemError);
  assert.equal(e.errnoName, "EADDRINUSE");
  assert.equal(e.errno, 98);
  assert.equal(e.syscall, "listen");
  assert.equal(e.cause, node);
  const full = systemError(Object.assign(new Error("no space"), { code: "ENOSPC", errno: -28 }), "ftruncate");
  assert.ok(full instanceof esm.NoSpaceError && full instanceof esm.SystemError);
  assert.equal(full.syscall, "ftruncate");
});

test("errors: a cycle refused by the GraphServer reaches the user as a CycleError", async () => {
  await using server = await GraphServer.start({ port: 0 });
  await using node = await esm.connect({ address: `tcp://127.0.0.1:${server.address.port}`, embedded: false });
  await node.connect("errs/a", "errs/b");
  const err = await node.connect("errs/b", "errs/a").then(
    () => assert.fail("a cycle was accepted"),
    (e: unknown) => e,
  );
  assert.ok(err instanceof esm.CycleError, `got ${String(err)}`);
  assert.ok(err instanceof cjs.CycleError);
  assert.equal(err.name, "CycleError");
  assert.equal(err.code, "ERR_PLEXUS_CYCLE");
  await assert.rejects(node.disconnect("errs/x", "errs/y"), esm.NotFoundError);
});

test("errors: a bad graph address is an InvalidArgumentError", async () => {
  for (const address of ["127.0.0.1:99999", "no-port", "[::1]", "", "udp://127.0.0.1:1", "tcp://127.0.0.1", "tls://[::1]:70000"]) {
    assert.throws(() => parseAddress(address), esm.InvalidArgumentError, address);
  }
  assert.deepEqual(parseAddress("127.0.0.1:7000"), { host: "127.0.0.1", port: 7000 });
  assert.deepEqual(parseAddress("tcp://127.0.0.1:7000"), { host: "127.0.0.1", port: 7000, tls: false });
  assert.deepEqual(parseAddress("tls://[::1]:7000/"), { host: "::1", port: 7000, tls: true });
  assert.deepEqual(parseAddress("TCP://localhost:1"), { host: "localhost", port: 1, tls: false });
  await assert.rejects(esm.connect({ address: "127.0.0.1:99999" }), esm.InvalidArgumentError);
  await assert.rejects(GraphClient.connect({ address: "nonsense" }), esm.InvalidArgumentError);
  await assert.rejects(GraphClient.connect({ address: "tcp://127.0.0.1:1", tls: {} }), esm.InvalidArgumentError, "tcp:// with TLS options");
});

test("errors: a taken port is a SystemError EADDRINUSE whose cause is Node's error", async () => {
  const taken = createServer();
  taken.listen(0, "127.0.0.1");
  await once(taken, "listening");
  const port = (taken.address() as { port: number }).port;
  try {
    const err = await GraphServer.start({ port }).then(
      () => assert.fail("the port was taken"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof esm.SystemError, `got ${String(err)}`);
    assert.equal(err.errnoName, "EADDRINUSE");
    assert.equal((err.cause as NodeJS.ErrnoException).code, "EADDRINUSE");
    const queueErr = await esm.queue.server({ url: `tcp://127.0.0.1:${port}` }).then(
      () => assert.fail("the queue server bound a taken port"),
      (e: unknown) => e,
    );
    assert.ok(queueErr instanceof esm.SystemError && queueErr.errnoName === "EADDRINUSE", `got ${String(queueErr)}`);
  } finally {
    taken.close();
  }
});
