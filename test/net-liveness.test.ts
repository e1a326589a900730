// The one liveness rule (src/net/liveness.ts): beat when nothing was written for a heartbeat,
// peer dead after max(peerTimeout, 3 × its heartbeat) of silence.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Liveness } from "../src/net/liveness.js";
import { refusePlainTcp } from "../src/net/loopback.js";
import { connectError } from "../src/net/dial.js";
import { AccessDeniedError, PeerDeadError, SystemError } from "../src/index.js";

test("liveness: an idle end beats every heartbeat; a write in the period replaces the beat", () => {
  const l = new Liveness(100, 100, 1000);
  let beats = 0;
  const beat = (): void => void beats++;
  for (let i = 0; i < 5; i++) {
    l.heard();
    assert.equal(l.tick(beat), true);
  }
  assert.equal(beats, 5, "idle: one beat per tick");
  l.sent();
  l.tick(beat);
  assert.equal(beats, 5, "a write during the period is the heartbeat");
  l.tick(beat);
  assert.equal(beats, 6);
  const slow = new Liveness(100, 350, 1000);
  let slowBeats = 0;
  for (let i = 0; i < 9; i++) slow.tick(() => void slowBeats++);
  assert.equal(slowBeats, 3, "a heartbeat of 3.5 ticks beats every 3 ticks");
});

test("liveness: the peer is dead after max(peerTimeout, 3 × its heartbeat) of silence", () => {
  const l = new Liveness(100, 100, 500);
  assert.equal(l.deadAfterMs, 500);
  let alive = 0;
  while (l.tick(() => {})) alive++;
  assert.equal(alive, 5, "five silent ticks of 100 ms are survived, the sixth is not");
  const m = new Liveness(100, 100, 500);
  m.setPeerHeartbeat(400);
  assert.equal(m.deadAfterMs, 1200, "a slow peer's heartbeat stretches the dead time");
  for (let i = 0; i < 100; i++) {
    if (i % 10 === 0) m.heard();
    assert.equal(m.tick(() => {}), true, "a peer heard every second stays alive");
  }
});

test("net: the loopback rule and the connect errors are decided in one place", () => {
  for (const host of ["127.0.0.1", "::1", "localhost"]) refusePlainTcp(host, false, false, "serve");
  refusePlainTcp("192.0.2.1", true, false, "connect");
  refusePlainTcp("192.0.2.1", false, true, "connect");
  assert.throws(() => refusePlainTcp("192.0.2.1", false, false, "serve", "tcp.tls"), (e: unknown) => e instanceof AccessDeniedError && /serve TLS \(option tcp\.tls\)/.test(e.message));
  assert.throws(() => refusePlainTcp("example.com", false, false, "connect"), /plain TCP to example\.com/);
  const refused = connectError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED", errno: -111, syscall: "connect" }), "the queue server at 127.0.0.1:9");
  assert.ok(refused instanceof PeerDeadError);
  assert.match(refused.message, /nothing listens for the queue server at 127\.0\.0\.1:9/);
  assert.ok(refused.cause instanceof SystemError && refused.cause.errnoName === "ECONNREFUSED");
  const tls = connectError(Object.assign(new Error("self-signed certificate"), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" }), "the server");
  assert.ok(tls instanceof AccessDeniedError);
});
