// Tests of the C++ addon through its typed contract (src/native.ts): segments across processes
// and threads, eventfd wake-ups, fd passing, liveness, lock files, copy and semaphores.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, statSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { mayTuneAllocator, native, type Watcher } from "../src/native.js";
import { InvalidArgumentError, NoSpaceError, SystemError } from "../src/errors.js";

const n = native();
const nativeUrl = new URL("../src/native.js", import.meta.url).href;
const loaderUrl = new URL("../src/native-loader.cjs", import.meta.url).href;
let counter = 0;
/** A unique POSIX IPC name for this process. */
const uniqueName = (tag: string): string => `/plexus-test-${process.pid}-${tag}-${counter++}`;

// ---- helpers ----------------------------------------------------------------------------------

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawns `node` running an ES module whose prelude defines `n` (the addon). */
function spawnChild(code: string, execArgv: string[] = []): ChildProcess {
  const source = `import { native } from ${JSON.stringify(nativeUrl)};\nconst n = native();\n${code}`;
  return spawn(process.execPath, [...execArgv, "--input-type=module", "-e", source], { stdio: ["ignore", "pipe", "pipe"] });
}

/** Collects a child's output until it exits. */
function finished(child: ChildProcess): Promise<ChildResult> {
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })));
}

async function runChild(code: string, execArgv: string[] = []): Promise<ChildResult> {
  const result = await finished(spawnChild(code, execArgv));
  assert.equal(result.code, 0, `child failed (${result.signal ?? result.code}):\n${result.stderr}`);
  return result;
}

/** Resolves when the child prints a line containing `text`. */
function lineFrom(child: ChildProcess, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (d: Buffer): void => {
      seen += d.toString();
      if (seen.includes(text)) {
        child.stdout?.off("data", onData);
        resolve();
      }
    };
    child.stdout?.on("data", onData);
    child.on("exit", () => reject(new Error(`child exited before printing ${text}`)));
  });
}

/** A Watcher whose next callback resolves the returned promise with the event bits. */
function watchOnce(fd: number): { watcher: Watcher; fired: Promise<number> } {
  let watcher!: Watcher;
  const fired = new Promise<number>((resolve) => {
    watcher = new n.Watcher(fd, (events) => {
      watcher.stop();
      resolve(events);
    });
  });
  return { watcher, fired };
}

function assertSystemError(fn: () => unknown, errnoName: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SystemError, `expected SystemError, got ${String(err)}`);
    assert.equal(err.code, "ERR_PLEXUS_SYSTEM");
    assert.equal(err.errnoName, errnoName);
    return true;
  });
}

function assertArgumentError(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    assert.equal(err.code, "ERR_PLEXUS_INVALID_ARGUMENT");
    return true;
  });
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---- segments -----------------------------------------------------------------------------------

test("segment: create in one process, open and write in another; Atomics work", async () => {
  const name = uniqueName("seg");
  try {
    const sab = n.segmentCreate(name, 65536, 0o600);
    assert.ok(sab instanceof SharedArrayBuffer);
    assert.equal(sab.byteLength, 65536);
    const view = new Int32Array(sab);
    Atomics.store(view, 0, 1234);
    assert.equal(Atomics.add(view, 1, 5), 0);
    assert.equal(Atomics.compareExchange(view, 1, 5, 6), 5);
    const { stdout } = await runChild(`
      const view = new Int32Array(n.segmentOpen(${JSON.stringify(name)}));
      console.log(Atomics.load(view, 0), Atomics.load(view, 1), view.buffer.byteLength);
      Atomics.store(view, 2, 777);
      Atomics.add(view, 1, 10);
    `);
    assert.equal(stdout.trim(), "1234 6 65536");
    assert.equal(Atomics.load(view, 2), 777);
    assert.equal(Atomics.load(view, 1), 16);
    assert.equal(n.segmentOpen(name).byteLength, 65536);
  } finally {
    n.segmentUnlink(name);
  }
});

test("segment: EEXIST, ENOENT, unlink, mode", () => {
  const name = uniqueName("exists");
  n.segmentCreate(name, 4096, 0o640);
  try {
    assertSystemError(() => n.segmentCreate(name, 4096, 0o600), "EEXIST");
    assert.equal(statSync(`/dev/shm${name}`).mode & 0o777, 0o640);
  } finally {
    assert.equal(n.segmentUnlink(name), true);
  }
  assert.equal(n.segmentUnlink(name), false);
  assertSystemError(() => n.segmentOpen(name), "ENOENT");
  assert.throws(() => n.segmentOpen(name), (err: SystemError) => err.syscall === "shm_open" && err.errno === 2);
});

test("segment: a full /dev/shm gives NoSpaceError and leaves nothing behind", () => {
  const fs = statfsSync("/dev/shm");
  if (fs.blocks === 0) return; // unlimited tmpfs: nothing to exhaust
  const tooBig = (fs.blocks + 1) * fs.bsize; // more than the total, hence more than bavail * bsize
  assert.ok(tooBig > fs.bavail * fs.bsize);
  const name = uniqueName("nospace");
  assert.throws(
    () => n.segmentCreate(name, tooBig, 0o600),
    (err: unknown) => {
      assert.ok(err instanceof NoSpaceError);
      assert.equal(err.code, "ERR_PLEXUS_NO_SPACE");
      assert.equal(err.errnoName, "ENOSPC");
      assert.equal(err.syscall, "posix_fallocate");
      return true;
    },
  );
  assert.equal(existsSync(`/dev/shm${name}`), false);
});

test("memfd: create, mapFd of the fd (also from another process via /proc)", async () => {
  const { fd, buffer } = n.memfdCreate("plexus-test", 8192);
  try {
    assert.ok(fd >= 0);
    assert.equal(buffer.byteLength, 8192);
    const again = n.mapFd(fd);
    assert.equal(again.byteLength, 8192);
    new Uint8Array(buffer)[100] = 42;
    assert.equal(new Uint8Array(again)[100], 42);
    const { stdout } = await runChild(`
      import { openSync, closeSync } from "node:fs";
      const fd = openSync("/proc/${process.pid}/fd/${fd}", "r+");
      const bytes = new Uint8Array(n.mapFd(fd));
      closeSync(fd);
      console.log(bytes[100], bytes.length);
      bytes[101] = 43;
    `);
    assert.equal(stdout.trim(), "42 8192");
    assert.equal(new Uint8Array(buffer)[101], 43);
  } finally {
    n.close(fd);
  }
  assertSystemError(() => n.close(fd), "EBADF");
  assertSystemError(() => n.mapFd(fd), "EBADF");
});

test("segment: retire maps zeros under every view; idempotent; foreign buffers rejected", () => {
  const name = uniqueName("retire");
  const sab = n.segmentCreate(name, 8192, 0o600);
  const other = n.segmentOpen(name);
  n.segmentUnlink(name);
  const view = new Uint32Array(sab);
  view.fill(0xdeadbeef);
  assert.equal(new Uint32Array(other)[5], 0xdeadbeef);
  n.segmentRetire(sab);
  assert.equal(view[5], 0);
  assert.equal(view.reduce((a, b) => a + b, 0), 0);
  assert.equal(new Uint32Array(other)[5], 0xdeadbeef); // a separate mapping is untouched
  n.segmentRetire(sab);
  view[0] = 7; // private zero pages stay writable
  assert.equal(view[0], 7);
  assertArgumentError(() => n.segmentRetire(new SharedArrayBuffer(16)));
  assertArgumentError(() => n.segmentRetire(new ArrayBuffer(16) as unknown as SharedArrayBuffer));
});

test("segment: a SharedArrayBuffer posted to a worker is the same memory", async () => {
  const name = uniqueName("worker");
  const sab = n.segmentCreate(name, 4096, 0o600);
  n.segmentUnlink(name);
  const view = new Int32Array(sab);
  Atomics.store(view, 0, 5);
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const view = new Int32Array(workerData);
     Atomics.store(view, 1, Atomics.load(view, 0) * 2);
     parentPort.postMessage("done");`,
    { eval: true, workerData: sab },
  );
  const message = await new Promise((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  assert.equal(message, "done");
  assert.equal(Atomics.load(view, 1), 10);
  await worker.terminate();
});

// ---- wake-ups and fd passing --------------------------------------------------------------------

test("eventfd: signal, drain, counter semantics", () => {
  const fd = n.eventfdCreate();
  try {
    assert.equal(n.eventfdDrain(fd), 0);
    n.eventfdSignal(fd);
    n.eventfdSignal(fd);
    n.eventfdSignal(fd);
    assert.equal(n.eventfdDrain(fd), 3);
    assert.equal(n.eventfdDrain(fd), 0);
  } finally {
    n.close(fd);
  }
  assertSystemError(() => n.eventfdSignal(fd), "EBADF");
});

test("timerfd: expires once after its delay, re-arming replaces, 0 disarms, bad arguments are typed errors", async () => {
  const fd = n.timerfdCreate();
  try {
    assert.equal(n.eventfdDrain(fd), 0, "not armed: nothing to read");
    n.timerfdArm(fd, 1e6); // 1 ms
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(n.eventfdDrain(fd), 1);
    assert.equal(n.eventfdDrain(fd), 0, "one shot");
    n.timerfdArm(fd, 5e6);
    n.timerfdArm(fd, 0); // disarmed before it expired
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(n.eventfdDrain(fd), 0);
    n.timerfdArm(fd, 1e18); // far away: clamped, armed, never expires here
    n.timerfdArm(fd, 0);
    assert.throws(() => n.timerfdArm(fd, "1" as unknown as number), InvalidArgumentError);
    assert.throws(() => n.timerfdArm(fd, NaN), InvalidArgumentError);
  } finally {
    n.close(fd);
  }
  assertSystemError(() => n.timerfdArm(fd, 1e6), "EBADF");
});

test("dup: a second descriptor of the same eventfd outlives the first", () => {
  const fd = n.eventfdCreate();
  const copy = n.dup(fd);
  assert.notEqual(copy, fd);
  n.eventfdSignal(fd);
  n.close(fd);
  assert.equal(n.eventfdDrain(copy), 1);
  n.close(copy);
  assertSystemError(() => n.dup(copy), "EBADF");
  assert.throws(() => n.dup(-1), (err: unknown) => err instanceof InvalidArgumentError);
});

test("fd passing: a child receives an eventfd over a Unix socket and wakes our Watcher", async () => {
  const path = `\0plexus-test-${process.pid}-${counter++}`;
  const listener = n.unixListen(path);
  const efd = n.eventfdCreate();
  const wake = watchOnce(efd);
  const child = spawnChild(`
    const sock = n.unixConnect(${JSON.stringify(path)});
    const w = new n.Watcher(sock, () => {
      const got = n.recvFds(sock, 64);
      if (got === null) return;
      w.close();
      if (new TextDecoder().decode(got.data) !== "take" || got.fds.length !== 1) throw new Error("bad message");
      n.eventfdSignal(got.fds[0]);
      n.close(got.fds[0]);
      n.close(sock);
    });
  `);
  const done = finished(child);
  try {
    const accepted = await new Promise<number>((resolve) => {
      const w = new n.Watcher(listener, () => {
        const conn = n.unixAccept(listener);
        if (conn < 0) return;
        w.close();
        resolve(conn);
      });
    });
    const creds = n.peerCredentials(accepted);
    assert.equal(creds.pid, child.pid);
    assert.equal(creds.uid, process.getuid?.());
    n.sendFds(accepted, new TextEncoder().encode("take"), [efd]);
    assert.equal((await wake.fired) & 1, 1);
    assert.equal(n.eventfdDrain(efd), 1);
    const result = await done;
    assert.equal(result.code, 0, result.stderr);
    // The peer is gone: EOF, then EPIPE (as an error, not a SIGPIPE) on send.
    const eof = n.recvFds(accepted, 16);
    assert.ok(eof !== null);
    assert.equal(eof.data.length, 0);
    assert.deepEqual(eof.fds, []);
    assertSystemError(() => n.sendFds(accepted, new Uint8Array([1]), []), "EPIPE");
    n.close(accepted);
  } finally {
    wake.watcher.close();
    wake.watcher.close(); // idempotent
    n.close(efd);
    n.close(listener);
  }
});

test("fd passing: socketpair-like round trip, EAGAIN as null, filesystem socket replaced", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plexus-test-"));
  const path = join(dir, "sock");
  try {
    const stale = n.unixListen(path);
    n.close(stale); // leaves the socket file behind
    assert.ok(existsSync(path));
    const listener = n.unixListen(path);
    const client = n.unixConnect(path);
    const server = n.unixAccept(listener);
    assert.ok(server >= 0);
    assert.equal(n.unixAccept(listener), -1);
    assert.equal(n.recvFds(server, 16), null);
    const file = openSync(join(dir, "data"), "w+");
    const payload = new Uint8Array([9, 8, 7, 6, 5]);
    n.sendFds(client, payload.subarray(1, 4), [file, file]);
    const got = n.recvFds(server, 2); // fewer bytes than sent: the rest stays queued
    assert.ok(got !== null);
    assert.deepEqual([...got.data], [8, 7]);
    assert.equal(got.fds.length, 2);
    assert.ok(got.fds.every((fd) => fd > 2 && fd !== file));
    const rest = n.recvFds(server, 100);
    assert.ok(rest !== null);
    assert.deepEqual([...rest.data], [6]);
    assert.deepEqual(rest.fds, []);
    for (const fd of got.fds) n.close(fd);
    closeSync(file);
    n.sendFds(client, new DataView(new SharedArrayBuffer(3)) as unknown as Uint8Array, []);
    assert.equal(n.recvFds(server, 100)?.data.length, 3);
    for (const fd of [client, server, listener]) n.close(fd);
    assertSystemError(() => n.unixConnect(join(dir, "missing")), "ENOENT");
    assertSystemError(() => n.unixConnect(`\0plexus-missing-${process.pid}`), "ECONNREFUSED");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fd ownership: a terminated worker's descriptors are closed, so its peers see EOF at once", async () => {
  const before = n.ownedFdCount();
  const a = n.eventfdCreate();
  const b = n.dup(a);
  assert.equal(n.ownedFdCount(), before + 2, "each descriptor made here is owned by this thread");
  n.close(a);
  n.close(b);
  assert.equal(n.ownedFdCount(), before, "close() forgets them");
  const socket = `\0plexus-test-own-${process.pid}-${counter++}`;
  const listener = n.unixListen(socket);
  try {
    for (const how of ["terminate", "exit"] as const) {
      // The worker connects, makes an eventfd, and keeps both open: it never closes them itself.
      const worker = new Worker(
        `const { parentPort, workerData } = require("node:worker_threads");
         const n = require(workerData.loader).loadAddon();
         const fd = n.unixConnect(workerData.socket);
         n.eventfdCreate();
         parentPort.postMessage(n.ownedFdCount());
         parentPort.once("message", () => process.exit(0)); // "exit": when the test says so
         setInterval(() => {}, 1000);`,
        { eval: true, workerData: { loader: new URL(loaderUrl).pathname, socket, how } },
      );
      assert.equal((await new Promise((resolve, reject) => worker.once("message", resolve).once("error", reject))) as number, 2);
      let peer = -1;
      while ((peer = n.unixAccept(listener)) < 0) await new Promise((r) => setTimeout(r, 1));
      assert.equal(n.recvFds(peer, 16), null, "connected, nothing to read yet");
      if (how === "terminate") await worker.terminate();
      else {
        const exited = new Promise((r) => worker.once("exit", r));
        worker.postMessage("exit");
        await exited;
      }
      const eof = n.recvFds(peer, 16);
      assert.ok(eof !== null && eof.data.length === 0, `EOF after the worker's ${how}, not at process exit`);
      n.close(peer);
    }
  } finally {
    n.close(listener);
  }
  assert.equal(n.ownedFdCount(), before);
});

test("watcher: unref lets a process exit; a referenced watcher keeps it alive", async () => {
  const unrefed = await runChild(`
    const fd = n.eventfdCreate();
    const w = new n.Watcher(fd, () => {});
    w.unref();
    console.log("waiting");
  `);
  assert.equal(unrefed.stdout.trim(), "waiting");

  const fired = await runChild(`
    const fd = n.eventfdCreate();
    const w = new n.Watcher(fd, (events) => {
      n.eventfdDrain(fd);
      // make-callback semantics: microtasks and nextTick run after the callback
      Promise.resolve().then(() => console.log("microtask", events));
      process.nextTick(() => console.log("tick"));
      w.close();
    });
    w.stop();
    w.start();
    w.start();
    n.eventfdSignal(fd);
  `);
  assert.deepEqual(fired.stdout.trim().split("\n"), ["tick", "microtask 1"]);

  const kept = spawnChild(`
    const fd = n.eventfdCreate();
    const w = new n.Watcher(fd, () => {});
    w.unref();
    w.ref();
    console.log("ready");
  `);
  const done = finished(kept);
  await lineFrom(kept, "ready");
  await delay(150);
  assert.equal(kept.exitCode, null, "a referenced watcher must keep the process alive");
  kept.kill("SIGTERM");
  assert.equal((await done).signal, "SIGTERM");
});

test("watcher: closing the caller's fd (and reusing its number) does not disturb other watchers", async () => {
  const a = n.eventfdCreate();
  const old = new n.Watcher(a, () => assert.fail("the old watcher must not fire"));
  old.stop();
  n.close(a);
  const b = n.eventfdCreate(); // usually gets a's number back
  const { watcher, fired } = watchOnce(b);
  old.close(); // must not unregister b from the event loop
  n.eventfdSignal(b);
  assert.equal(await fired, 1);
  watcher.close();
  n.close(b);
  // Two watchers on the same fd both work (each polls its own duplicate).
  const c = n.eventfdCreate();
  const first = watchOnce(c);
  const second = watchOnce(c);
  n.eventfdSignal(c);
  assert.deepEqual(await Promise.all([first.fired, second.fired]), [1, 1]);
  first.watcher.close();
  second.watcher.close();
  n.close(c);
});

test("watcher: workers exiting with active watchers and semaphore waits, and GC, do not crash", async () => {
  const semName = uniqueName("wsem");
  n.semOpen(semName, true, 0o600, 0).close();
  try {
    const { stdout } = await runChild(
      `
      import { Worker } from "node:worker_threads";
      const body = (exit) => \`
        // dynamic imports work whether the eval'd worker is CommonJS or a module
        Promise.all([import("node:worker_threads"), import(${JSON.stringify(nativeUrl)})]).then(([{ parentPort }, { native }]) => {
          const n = native();
          const fd = n.eventfdCreate();
          const w = new n.Watcher(fd, () => {});
          const stopped = new n.Watcher(n.eventfdCreate(), () => {});
          stopped.stop();
          const sem = n.semOpen(${JSON.stringify(semName)}, false, 0, 0);
          sem.wait(60000);
          parentPort.postMessage("ready");
          \${exit}
        });\`;
      async function run(exit, terminate) {
        const worker = new Worker(body(exit), { eval: true });
        worker.on("error", (e) => { if (e.message !== "boom") console.error(e); });
        // Listen for the exit from the start: a worker that exits right after "ready" may do so
        // before a listener added after the message would be in place.
        const exited = new Promise((resolve) => worker.once("exit", resolve));
        await new Promise((resolve) => worker.once("message", resolve));
        if (terminate) await worker.terminate();
        else await exited;
      }
      await run("", true);
      await run("process.exit(0);", false);
      await run("setTimeout(() => { throw new Error('boom'); }, 10);", false);
      // Watchers that become garbage: closed by their finalizers.
      for (let i = 0; i < 200; i++) {
        const fd = n.eventfdCreate();
        const w = new n.Watcher(fd, () => {});
        if (i % 2) w.stop(); else w.close();
        n.close(fd);
      }
      globalThis.gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
      globalThis.gc();
      console.log("survived");
      `,
      ["--expose-gc"],
    );
    assert.equal(stdout.trim(), "survived");
  } finally {
    n.semUnlink(semName);
  }
});

test("watcher: a closed watcher whose callback closes over it is collected (closed inside or outside the callback)", async () => {
  // The shape of every peer watcher: the callback names the peer, which holds the watcher. The
  // callback must not stay a strong root once the watcher is closed, or the cycle leaks.
  const { stdout } = await runChild(
    `
    let collected = 0;
    let called = 0;
    const registry = new FinalizationRegistry(() => collected++);
    const closeLater = [];
    for (let i = 0; i < 200; i++) {
      const fd = n.eventfdCreate();
      const peer = { fd, watcher: undefined };
      peer.watcher = new n.Watcher(fd, () => {
        called++;
        if (i % 2) { peer.watcher.close(); n.close(peer.fd); } else { n.eventfdDrain(peer.fd); closeLater.push(peer); }
      });
      n.eventfdSignal(fd);
      registry.register(peer.watcher, i);
    }
    // The even half is closed outside its callback, once every callback ran (however slow the machine).
    for (let i = 0; i < 400 && called < 200; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    // (in a plain function: a variable of this async function could stay in its suspended frame)
    const closeAll = () => { for (const peer of closeLater.splice(0)) { peer.watcher.close(); n.close(peer.fd); } };
    closeAll();
    for (let i = 0; i < 20 && collected < 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      globalThis.gc();
    }
    console.log(JSON.stringify({ called, collected }));
    `,
    ["--expose-gc"],
  );
  assert.deepEqual(JSON.parse(stdout.trim()), { called: 200, collected: 200 });
});

// ---- liveness ----------------------------------------------------------------------------------

test("liveness: a pidfd watcher fires when a child is SIGKILLed; processAlive", async () => {
  const child = spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  const pid = child.pid;
  assert.ok(pid !== undefined);
  const pidfd = n.pidfdOpen(pid);
  try {
    const { watcher, fired } = watchOnce(pidfd);
    assert.equal(n.processAlive(pid), true);
    child.kill("SIGKILL");
    assert.equal((await fired) & 1, 1);
    watcher.close();
    await exited;
    assert.equal(n.processAlive(pid), false);
    assertSystemError(() => n.pidfdOpen(pid), "ESRCH");
  } finally {
    n.close(pidfd);
  }
  assert.equal(n.processAlive(process.pid), true);
  assert.equal(n.processAlive(1), true); // EPERM or not: it exists
});

test("liveness: lockFile conflicts between processes and is released on process death", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plexus-test-"));
  const path = join(dir, "lock");
  try {
    const fd = n.lockFile(path, 0o600, false);
    assert.ok(fd >= 0);
    assert.equal(n.lockFile(path, 0o600, false), -1); // another open file description conflicts
    assert.equal(n.lockFile(path, 0o600, true), -1);
    const other = await runChild(`console.log(n.lockFile(${JSON.stringify(path)}, 0o600, false));`);
    assert.equal(other.stdout.trim(), "-1");
    n.close(fd);

    const holder = spawnChild(`
      console.log("locked", n.lockFile(${JSON.stringify(path)}, 0o600, false));
      setInterval(() => {}, 1000);
    `);
    const done = finished(holder);
    await lineFrom(holder, "locked");
    assert.equal(n.lockFile(path, 0o600, false), -1);
    holder.kill("SIGKILL");
    await done;
    const again = n.lockFile(path, 0o600, false);
    assert.ok(again >= 0);
    n.close(again);

    const s1 = n.lockFile(path, 0o600, true);
    const s2 = n.lockFile(path, 0o600, true);
    assert.ok(s1 >= 0 && s2 >= 0);
    assert.equal(n.lockFile(path, 0o600, false), -1);
    n.close(s1);
    n.close(s2);
    assertSystemError(() => n.lockFile(join(dir, "missing", "lock"), 0o600, false), "ENOENT");
    // create = false locks an existing file and never makes one
    const existing = n.lockFile(path, 0o600, false, false);
    assert.ok(existing >= 0);
    n.close(existing);
    assertSystemError(() => n.lockFile(join(dir, "absent"), 0o600, false, false), "ENOENT");
    assert.equal(existsSync(join(dir, "absent")), false);
    assert.throws(() => n.lockFile(path, 0o600, false, "no" as unknown as boolean), InvalidArgumentError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- copy --------------------------------------------------------------------------------------------

test("copy: every view type, offsets, shared sources, bounds", () => {
  const target = new SharedArrayBuffer(64);
  const bytes = new Uint8Array(target);
  n.copy(target, 0, Buffer.from([1, 2, 3]));
  assert.deepEqual([...bytes.subarray(0, 4)], [1, 2, 3, 0]);
  const backing = new Uint8Array([10, 11, 12, 13, 14, 15]);
  n.copy(target, 10, backing.subarray(2, 5)); // a view with a byteOffset
  assert.deepEqual([...bytes.subarray(9, 14)], [0, 12, 13, 14, 0]);
  n.copy(target, 16, new Float64Array([1.5]));
  assert.equal(new Float64Array(target, 16, 1)[0], 1.5);
  n.copy(target, 32, new DataView(new Uint8Array([7, 7, 7, 7]).buffer, 1, 2));
  assert.deepEqual([...bytes.subarray(31, 35)], [0, 7, 7, 0]);
  const shared = new Uint8Array(new SharedArrayBuffer(8)).fill(99);
  n.copy(target, 56, shared); // exactly to the end
  assert.deepEqual([...bytes.subarray(55, 64)], [0, 99, 99, 99, 99, 99, 99, 99, 99]);
  n.copy(target, 64, new Uint8Array(0)); // empty at the end is fine
  const segmentName = uniqueName("copy");
  const segment = n.segmentCreate(segmentName, 4096, 0o600);
  n.segmentUnlink(segmentName);
  n.copy(segment, 4000, new Uint16Array([0x0201, 0x0403]));
  assert.deepEqual([...new Uint8Array(segment, 4000, 4)], [1, 2, 3, 4]);
  n.copy(target, 0, new Uint8Array(segment, 4000, 4)); // from a mapped segment
  assert.deepEqual([...bytes.subarray(0, 4)], [1, 2, 3, 4]);

  assertArgumentError(() => n.copy(target, 62, new Uint8Array(3)));
  assertArgumentError(() => n.copy(target, 65, new Uint8Array(0)));
  assertArgumentError(() => n.copy(target, -1, new Uint8Array(1)));
  assertArgumentError(() => n.copy(target, 1.5, new Uint8Array(1)));
  assertArgumentError(() => n.copy(target, Number.NaN, new Uint8Array(1)));
  assertArgumentError(() => n.copy(target, 2 ** 60, new Uint8Array(1)));
  assertArgumentError(() => n.copy(target, "0" as unknown as number, new Uint8Array(1)));
  assertArgumentError(() => n.copy(new Uint8Array(8) as unknown as SharedArrayBuffer, 0, new Uint8Array(1)));
  assertArgumentError(() => n.copy(target, 0, [1, 2] as unknown as Uint8Array));
});

test("copy: into an ArrayBuffer, out of shared memory, bounds (none for a detached one)", () => {
  const shared = new Uint8Array(new SharedArrayBuffer(4096), 16, 3000).map((_, i) => (i * 31 + 5) & 0xff);
  const target = new ArrayBuffer(4000);
  n.copy(target, 7, shared);
  const bytes = new Uint8Array(target);
  assert.deepEqual(bytes.subarray(7, 3007), new Uint8Array(shared));
  assert.equal(bytes[6], 0);
  assert.equal(bytes[3007], 0);
  n.copy(target, 0, Buffer.from([9, 8])); // any source
  assert.deepEqual([...bytes.subarray(0, 3)], [9, 8, 0]);
  assertArgumentError(() => n.copy(target, 1001, shared));
  const detached = new ArrayBuffer(64);
  structuredClone(detached, { transfer: [detached] });
  assertArgumentError(() => n.copy(detached, 0, new Uint8Array(1)));
});

test("copy: large copies into a large target (the streaming-store path) land byte for byte, at any alignment", () => {
  const n = native();
  const target = new SharedArrayBuffer(64 << 20); // the size from which large copies stream
  const bytes = new Uint8Array(target);
  const source = new Uint8Array((1 << 20) + 77);
  for (let i = 0; i < source.length; i++) source[i] = (i * 131 + 7) & 0xff;
  const sharedSource = new Uint8Array(new SharedArrayBuffer(source.length + 16), 5, source.length);
  sharedSource.set(source);
  for (const [offset, from] of [
    [0, source],
    [3, source.subarray(1)], // unaligned target and source
    [(32 << 20) + 13, sharedSource], // a view of another SharedArrayBuffer
    [target.byteLength - source.length, source], // exactly to the end
    [100, new Float64Array(source.buffer, 0, (source.length >> 3) - 1)],
  ] as const) {
    bytes.fill(0xee, Math.max(0, offset - 64), Math.min(bytes.length, offset + from.byteLength + 64));
    n.copy(target, offset, from);
    const expected = new Uint8Array(from.buffer, from.byteOffset, from.byteLength);
    assert.ok(Buffer.from(bytes.buffer, offset, from.byteLength).equals(expected), `bytes at ${offset}`);
    if (offset >= 64) assert.ok(bytes.subarray(offset - 64, offset).every((b) => b === 0xee), "bytes before untouched");
    const after = offset + from.byteLength;
    assert.ok(bytes.subarray(after, Math.min(bytes.length, after + 64)).every((b) => b === 0xee), "bytes after untouched");
  }
});

// ---- semaphores ------------------------------------------------------------------------------------------

test("semaphore: post, tryWait, value, wait timeout, cancelWait, close", async () => {
  const name = uniqueName("sem");
  const sem = n.semOpen(name, true, 0o600, 2);
  try {
    assertSystemError(() => n.semOpen(name, true, 0o600, 0), "EEXIST");
    assert.equal(sem.value(), 2);
    assert.equal(sem.tryWait(), true);
    assert.equal(await sem.wait(1000), true); // immediate
    assert.equal(sem.tryWait(), false);
    assert.equal(await sem.wait(0), false);
    assert.equal(sem.post(), true);
    assert.equal(sem.value(), 1);
    assert.equal(sem.tryWait(), true);

    let start = Date.now();
    assert.equal(await sem.wait(80), false);
    assert.ok(Date.now() - start >= 70, `timed out after ${Date.now() - start} ms`);

    setTimeout(() => sem.post(), 30);
    assert.equal(await sem.wait(5000), true);

    const pending = sem.wait(10_000);
    assert.throws(() => sem.wait(10), (err: unknown) => err instanceof InvalidArgumentError);
    start = Date.now();
    setTimeout(() => sem.cancelWait(), 20);
    assert.equal(await pending, false);
    assert.ok(Date.now() - start < 1000);
    assert.equal(sem.value(), 0);

    const closing = sem.wait(Infinity);
    setTimeout(() => sem.close(), 20);
    assert.equal(await closing, false);
    sem.close();
    assertArgumentError(() => sem.post());
    assertArgumentError(() => sem.value());
  } finally {
    sem.close();
    assert.equal(n.semUnlink(name), true);
  }
  assert.equal(n.semUnlink(name), false);
  assertSystemError(() => n.semOpen(name, false, 0, 0), "ENOENT");
});

test("semaphore: a wait is satisfied by a post from another process", async () => {
  const name = uniqueName("xsem");
  const sem = n.semOpen(name, true, 0o600, 0);
  try {
    const waiting = sem.wait(5000);
    const child = runChild(`
      const sem = n.semOpen(${JSON.stringify(name)}, false, 0, 0);
      setTimeout(() => { sem.post(); sem.close(); }, 50);
    `);
    assert.equal(await waiting, true);
    await child;
    assert.equal(sem.value(), 0);
  } finally {
    sem.close();
    n.semUnlink(name);
  }
});

// ---- arguments and the error factory -------------------------------------------------------------

test("arguments: invalid values throw InvalidArgumentError", () => {
  const bad: Array<() => unknown> = [
    () => n.segmentCreate("noslash", 4096, 0o600),
    () => n.segmentCreate("/a/b", 4096, 0o600),
    () => n.segmentCreate("/", 4096, 0o600),
    () => n.segmentCreate("/x", 0, 0o600),
    () => n.segmentCreate("/x", -1, 0o600),
    () => n.segmentCreate("/x", 1.5, 0o600),
    () => n.segmentCreate("/x", "4096" as unknown as number, 0o600),
    () => n.segmentCreate("/x", 4096, 0o10000),
    () => n.segmentCreate(42 as unknown as string, 4096, 0o600),
    () => n.segmentOpen("/bad\0name"),
    () => n.memfdCreate("m", 0),
    () => n.mapFd(-1),
    () => n.close(-1),
    () => n.close(2 ** 40),
    () => n.eventfdSignal(-1),
    () => n.eventfdDrain(Number.NaN),
    () => new n.Watcher(-1, () => {}),
    () => new n.Watcher(0, "nope" as unknown as () => void),
    () => n.unixListen(""),
    () => n.unixListen("x".repeat(200)),
    () => n.sendFds(0, new Uint8Array(0), []),
    () => n.sendFds(0, new Uint8Array(1), Array.from({ length: 17 }, () => 0)),
    () => n.sendFds(0, new Uint8Array(1), [-1]),
    () => n.sendFds(0, [1] as unknown as Uint8Array, []),
    () => n.recvFds(0, 0),
    () => n.pidfdOpen(0),
    () => n.processAlive(-1),
    () => n.lockFile("", 0o600, false),
    () => n.lockFile("/tmp/x", 0o600, "yes" as unknown as boolean),
    () => n.semOpen("nosem", true, 0o600, 0),
    () => n.semOpen("/x", true, 0o600, -1),
    () => n.semUnlink("/a/b"),
    () => n.setErrorFactory(undefined as unknown as () => Error),
  ];
  for (const fn of bad) assertArgumentError(fn);
});

test("errors: without a factory the addon throws plain errors with a code", async () => {
  const { stdout } = await runChild(`
    import { createRequire } from "node:module";
    const { loadAddon } = createRequire(import.meta.url)(new URL(${JSON.stringify(loaderUrl)}).pathname);
    const raw = loadAddon();
    const codes = [];
    try { raw.segmentOpen("/plexus-missing-${process.pid}"); } catch (e) { codes.push(e.code, e.errnoName, e.syscall, e instanceof Error); }
    try { raw.close(-1); } catch (e) { codes.push(e.code); }
    console.log(JSON.stringify(codes));
  `);
  assert.deepEqual(JSON.parse(stdout), ["ERR_PLEXUS_SYSTEM", "ENOENT", "shm_open", true, "ERR_PLEXUS_INVALID_ARGUMENT"]);
});

test("tcp: tcpListen binds an IP literal (v4, v6, port 0), tcpAccept hands out connections, bad input is typed", async () => {
  const { connect } = await import("node:net");
  const l = n.tcpListen("127.0.0.1", 0, 16);
  assert.ok(l.fd > 2 && l.port > 0);
  assert.equal(n.tcpAccept(l.fd), -1, "nothing pending");
  const c = connect(l.port, "127.0.0.1");
  await new Promise((r) => c.once("connect", r));
  let fd = -1;
  for (let i = 0; i < 200 && fd < 0; i++) {
    fd = n.tcpAccept(l.fd);
    if (fd < 0) await new Promise((r) => setTimeout(r, 5));
  }
  assert.ok(fd > 2, "the connection's fd");
  c.destroy();
  n.close(fd);
  assert.throws(() => n.tcpListen("127.0.0.1", l.port, 16), (e: unknown) => e instanceof SystemError && e.errnoName === "EADDRINUSE");
  n.close(l.fd);
  const six = n.tcpListen("::1", 0, 16);
  assert.ok(six.port > 0);
  n.close(six.fd);
  // "::" is dual-stack (as Node's net.Server), whatever the host's bindv6only: IPv4 clients connect.
  const dual = n.tcpListen("::", 0, 16);
  const v4 = connect(dual.port, "127.0.0.1");
  await new Promise((resolve, reject) => {
    v4.once("connect", resolve);
    v4.once("error", reject);
  });
  v4.destroy();
  n.close(dual.fd);
  assert.throws(() => n.tcpListen("localhost", 0, 16), InvalidArgumentError, "names are resolved by the caller");
  assert.throws(() => n.tcpListen("127.0.0.1", 70000, 16), InvalidArgumentError);
  assert.throws(() => n.tcpListen("127.0.0.1", 0, 0), InvalidArgumentError);
  assert.throws(() => n.tcpAccept(-1), InvalidArgumentError);
});

test("memory: retainFreedMemory tunes glibc's allocator (true there, false elsewhere); bad sizes are typed", () => {
  const n = native();
  const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
  const glibc = typeof header?.glibcVersionRuntime === "string";
  // The values the addon sets when it loads (see docs/operations.md), set again: idempotent.
  // Under a preloaded allocator (AddressSanitizer's run of these tests) glibc's malloc is not
  // the one in use, and the setting is refused.
  const result = n.retainFreedMemory(64 << 20, 32 << 20);
  if (!glibc) assert.equal(result, false);
  else if (process.env["LD_PRELOAD"] === undefined) assert.equal(result, true);
  else assert.equal(typeof result, "boolean");
  assert.throws(() => n.retainFreedMemory(-1, 32 << 20), InvalidArgumentError);
  assert.throws(() => n.retainFreedMemory(64 << 20, 64 << 20), InvalidArgumentError, "above glibc's own 32 MiB limit");
  assert.throws(() => n.retainFreedMemory(1.5, 0), InvalidArgumentError);
  // When Plexus sets them at load: not when told not to, nor over the operator's own settings.
  assert.equal(mayTuneAllocator({}), true);
  assert.equal(mayTuneAllocator({ PLEXUS_MALLOC_TUNING: "0" }), false);
  assert.equal(mayTuneAllocator({ MALLOC_TRIM_THRESHOLD_: "131072" }), false);
  assert.equal(mayTuneAllocator({ MALLOC_MMAP_THRESHOLD_: "131072" }), false);
  assert.equal(mayTuneAllocator({ GLIBC_TUNABLES: "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=0" }), false);
  assert.equal(mayTuneAllocator({ GLIBC_TUNABLES: "glibc.malloc.arena_max=2" }), true);
});
