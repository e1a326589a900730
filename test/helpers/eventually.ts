/** Polls `check` (which may be async) every 50 ms until it gives a value (not undefined/false/null), at most `ms`. */
export async function eventually<T>(what: string, check: () => T | undefined | false | null | Promise<T | undefined | false | null>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await check();
    if (r !== undefined && r !== false && r !== null) return r;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}
