/**
 * Ring positions held in write order and given back in any order: the oldest one still held
 * is as far as the ring's writer may come round to (a reader's taken frames; a writer's own
 * pinned frames).
 * (Internal: not part of the public API.)
 * @module
 */

/** Positions taken in increasing ring order, given back in any order; see {@link oldest}. */
export class HeldPositions {
  /** The positions, oldest first, live in `[first, count)`. */
  private starts = new Int32Array(16);
  /** 1 where the position at the same index was given back out of order. */
  private done = new Uint8Array(16);
  private first = 0;
  private count = 0;

  /** How many are held (including those given back out of order behind the oldest). */
  get size(): number {
    return this.count - this.first;
  }

  /** The oldest position still held; meaningful only while {@link size} > 0. */
  get oldest(): number {
    return this.starts[this.first];
  }

  /** Holds `pos`, which comes after every position held now. */
  add(pos: number): void {
    if (this.count === this.starts.length) {
      const live = this.starts.subarray(this.first, this.count);
      const liveDone = this.done.subarray(this.first, this.count);
      const size = live.length * 2 > this.starts.length ? this.starts.length * 2 : this.starts.length;
      const starts = new Int32Array(size);
      const done = new Uint8Array(size);
      starts.set(live);
      done.set(liveDone);
      this.starts = starts;
      this.done = done;
      this.count -= this.first;
      this.first = 0;
    }
    this.starts[this.count] = pos;
    this.done[this.count] = 0;
    this.count++;
  }

  /**
   * Gives `pos` back (default: the oldest). True when that moved the oldest position held
   * (or emptied the set); false when `pos` was not held or others older than it still are.
   */
  remove(pos: number = this.starts[this.first]): boolean {
    const n = this.count;
    let i = this.first;
    while (i < n && (this.starts[i] !== pos || this.done[i] !== 0)) i++; // (a done entry may share a live one's position)
    if (i === n) return false;
    this.done[i] = 1;
    if (i !== this.first) return false;
    while (this.first < n && this.done[this.first] !== 0) this.first++;
    if (this.first === n) this.first = this.count = 0;
    return true;
  }

  /** Gives everything back. */
  clear(): void {
    this.first = this.count = 0;
  }
}
