import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));

test("the package loads through its exports map from ESM and from CommonJS", async () => {
  const esm = await run(process.execPath, ["--input-type=module", "-e", "const p = await import('plexus'); console.log(typeof p.connect, typeof p.ShmSender, typeof p.PlexusError)"], { cwd: root });
  assert.equal(esm.stdout.trim(), "function function function");
  const cjs = await run(process.execPath, ["-e", "const p = require('plexus'); console.log(typeof p.connect, typeof p.ShmSender, typeof p.PlexusError)"], { cwd: root });
  assert.equal(cjs.stdout.trim(), "function function function");
});
