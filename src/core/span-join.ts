/**
 * @module core/span-join
 * Joining a walk's pieces into physical spans (internal): a piece that starts where the pending
 * span ends extends it; any other piece copies the pending span first. Copies through the memory
 * API pay a range check and an access check per call, so a walk a page at a time over pages that
 * lie one after another makes one call per run instead of one per page (VmArea reads and writes,
 * sg_copy_buffer: bench/RESULTS.md, session 14).
 * @example
 * const join = new SpanJoin((phys, at, n) => mem.readPhysInto(phys, dst, at, n));
 * for (const p of pieces) join.add(p.phys, p.at, p.n);
 * join.flush();
 */
export class SpanJoin {
  // INVARIANT: while _len > 0, [_phys, _phys + _len) is the memory of the walk's bytes
  //   [_at, _at + _len), not yet handed to the copy.
  private _phys = 0;
  private _at = 0;
  private _len = 0;
  private readonly _copy: (phys: number, at: number, n: number) => void;

  constructor(copy: (phys: number, at: number, n: number) => void) {
    this._copy = copy;
  }

  /** The walk's bytes [at, at + n) are at `phys` (pieces come in order, with no gap in `at`). */
  add(phys: number, at: number, n: number): void {
    if (this._len > 0 && phys === this._phys + this._len) {
      this._len += n;
      return;
    }
    this.flush();
    this._phys = phys;
    this._at = at;
    this._len = n;
  }

  /** Copy the pending span, if any (emptied first: a copy that throws is not repeated). */
  flush(): void {
    const n = this._len;
    if (n === 0) return;
    this._len = 0;
    this._copy(this._phys, this._at, n);
  }
}
