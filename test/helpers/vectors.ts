/**
 * The test vectors of docs/protocol.md: every ```hex <label> block of the page, read once, and
 * the check that a test file and the page name the same vectors of its sections.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const DOC = fileURLToPath(new URL("../../../docs/protocol.md", import.meta.url));

/** The page's vectors by label; throws on a malformed block (so a typo cannot hide a vector). */
export function readVectors(text: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const opened = text.split("\n").filter((line) => /^```hex\b/.test(line)).length;
  for (const m of text.matchAll(/^```hex[ \t]+(\S+)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)) {
    const [, label, block] = m;
    assert.ok(!out.has(label), `vector ${label} appears twice in docs/protocol.md`);
    const lines = block.split("\n").filter((line) => line.trim() !== "");
    assert.ok(lines.length > 0, `vector ${label} is empty`);
    const bytes: number[] = [];
    lines.forEach((line, i) => {
      const tokens = line.trim().split(/ +/);
      for (const t of tokens) assert.match(t, /^[0-9a-f]{2}$/, `vector ${label}: "${t}" is not a lowercase hex byte`);
      const last = i === lines.length - 1;
      assert.ok(last ? tokens.length <= 16 : tokens.length === 16, `vector ${label}, line ${i + 1}: 16 bytes a line`);
      bytes.push(...tokens.map((t) => parseInt(t, 16)));
    });
    out.set(label, Buffer.from(bytes));
  }
  assert.equal(out.size, opened, "every ```hex block of docs/protocol.md has a label and its closing fence");
  return out;
}

/** Every vector of the page. */
export const VECTORS = readVectors(readFileSync(DOC, "utf8"));

/** The page's bytes of `label`. */
export function vec(label: string): Buffer {
  const v = VECTORS.get(label);
  assert.ok(v !== undefined, `docs/protocol.md has no vector ${label}`);
  return v;
}

/** Asserts two byte sequences are equal, showing both in hex when they are not. */
export function sameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex").replace(/(..)(?!$)/g, "$1 ");
  assert.equal(hex(actual), hex(expected), `${what}: the code's bytes differ from the page's`);
}

/** The bytes "abc". */
export const ABC = Uint8Array.of(0x61, 0x62, 0x63);

/** A vector's check: writes the page's bytes from its stated values and reads them back. */
export type VectorCheck = (bytes: Buffer) => void | Promise<void>;

/**
 * Registers one test per check, and a test that the page's vectors whose label starts with one
 * of `prefixes` (e.g. "tcp.") are exactly those checked: neither the page nor the tests can drift.
 */
export function checkVectors(prefixes: readonly string[], checks: Record<string, VectorCheck>): void {
  const mine = (label: string): boolean => prefixes.some((p) => label.startsWith(p));
  test(`docs/protocol.md and the tests name the same ${prefixes.join(" / ")} vectors`, () => {
    const documented = [...VECTORS.keys()].filter(mine).sort();
    const checked = Object.keys(checks).sort();
    assert.deepEqual(
      { missingFromThePage: checked.filter((l) => !VECTORS.has(l) || !mine(l)), notChecked: documented.filter((l) => !(l in checks)) },
      { missingFromThePage: [], notChecked: [] },
    );
  });
  for (const [label, check] of Object.entries(checks)) {
    test(`vector ${label}`, async () => {
      await check(vec(label));
    });
  }
}
