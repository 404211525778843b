/**
 * @module iommu/flush-queue
 * Lazy IOTLB invalidation (IOMMU_DOMAIN_DMA_FQ), after dma-iommu.c's flush queue: unmapped IOVAs and
 * freed page-table pages wait in a ring until a full IOTLB flush that started after they were
 * queued has finished; only then is the IOVA handed back. Per-CPU rings of 256 entries with a 10 ms
 * timeout, or one ring of 32768 entries with 1 s for IOMMUs that trap every flush.
 */
import type { Clock } from '../core/clock.ts';

export const IOVA_DEFAULT_FQ_SIZE = 256;
export const IOVA_SINGLE_FQ_SIZE = 32768;
/** ms */
export const IOVA_DEFAULT_FQ_TIMEOUT = 10;
/** ms */
export const IOVA_SINGLE_FQ_TIMEOUT = 1000;

/** One queued unmap. */
export interface FqEntry {
  readonly iovaPfn: number;
  readonly pages: number;
  /** Page-table pages freed by the unmap, released with the IOVA. */
  readonly freelist: readonly number[];
  /** fq_flush_start_cnt when queued. */
  readonly counter: number;
  /** Virtual time when queued (for the lazy-window report). */
  readonly queuedAt: number;
}

/** What the queue does when it releases or flushes. */
export interface FlushQueueHooks {
  /** flush_iotlb_all on the domain. */
  flushIotlbAll(): void;
  /** Release an entry: free its table pages, then free_iova_fast(pfn, pages) on `cpu`. */
  release(entry: FqEntry, cpu: number): void;
}

export interface FlushQueueOptions {
  /** One shared ring (virtualised IOMMUs with shadow_on_flush) instead of per-CPU rings. */
  readonly single?: boolean;
  readonly cpus: number;
  /** Ring size (power of two; one slot stays empty). */
  readonly size?: number;
  /** Timeout in ms. */
  readonly timeoutMs?: number;
}

class Ring {
  // INVARIANT: entries between head (inclusive) and tail (exclusive), modulo size, are queued in
  //   order; the ring is full when (tail + 1) & mask === head (one slot always empty).
  readonly entries: Array<FqEntry | undefined>;
  readonly mask: number;
  head = 0;
  tail = 0;

  constructor(size: number) {
    this.entries = new Array<FqEntry | undefined>(size).fill(undefined);
    this.mask = size - 1;
  }

  get full(): boolean {
    return ((this.tail + 1) & this.mask) === this.head;
  }

  get length(): number {
    return (this.tail - this.head + this.mask + 1) & this.mask;
  }
}

/**
 * The flush queue of one DMA_FQ domain.
 * @example fq.queue(pfn, pages, freedTablePages, cpu); clock.advance(10e6) // flushed and released
 */
export class FlushQueue {
  private readonly _rings: Ring[];
  private readonly _hooks: FlushQueueHooks;
  private readonly _clock: Clock;
  readonly timeoutNs: number;
  readonly single: boolean;
  // INVARIANT: flushFinish <= flushStart; an entry may be released once entry.counter < flushFinish.
  flushStart = 0;
  flushFinish = 0;
  private _timerOn = false;
  /** Full flushes done (timer, full ring, or explicit). */
  flushes = 0;
  /** Longest time an entry waited before release, ns (the lazy window actually seen). */
  longestWaitNs = 0;

  constructor(clock: Clock, hooks: FlushQueueHooks, opts: FlushQueueOptions) {
    this.single = opts.single === true;
    const size = opts.size ?? (this.single ? IOVA_SINGLE_FQ_SIZE : IOVA_DEFAULT_FQ_SIZE);
    this._rings = Array.from({ length: this.single ? 1 : opts.cpus }, () => new Ring(size));
    this._hooks = hooks;
    this._clock = clock;
    this.timeoutNs = (opts.timeoutMs ?? (this.single ? IOVA_SINGLE_FQ_TIMEOUT : IOVA_DEFAULT_FQ_TIMEOUT)) * 1e6;
  }

  /** Entries waiting, over all rings. */
  get pending(): number {
    return this._rings.reduce((n, r) => n + r.length, 0);
  }

  /** Every waiting entry (for auditors and reports). */
  *entries(): Generator<FqEntry> {
    for (const r of this._rings) {
      for (let i = r.head; i !== r.tail; i = (i + 1) & r.mask) yield r.entries[i] as FqEntry;
    }
  }

  /** Is this IOVA pfn waiting in the queue? */
  holds(iovaPfn: number): boolean {
    for (const e of this.entries()) if (iovaPfn >= e.iovaPfn && iovaPfn < e.iovaPfn + e.pages) return true;
    return false;
  }

  /** queue_iova: release what is already flushed, flush synchronously if still full, append, arm the timer. */
  queue(iovaPfn: number, pages: number, freelist: readonly number[], cpu: number): void {
    const ringIdx = this.single ? 0 : cpu;
    const ring = this._rings[ringIdx] as Ring;
    this._releaseFlushed(ring, ringIdx);
    if (ring.full) {
      this.flushIotlb();
      this._releaseFlushed(ring, ringIdx);
    }
    ring.entries[ring.tail] = { iovaPfn, pages, freelist, counter: this.flushStart, queuedAt: this._clock.now };
    ring.tail = (ring.tail + 1) & ring.mask;
    if (!this._timerOn) {
      this._timerOn = true;
      this._clock.setTimeout(this.timeoutNs, () => this._timeout());
    }
  }

  /** fq_flush_iotlb: start count, flush_iotlb_all, finish count. */
  flushIotlb(): void {
    this.flushStart++;
    this._hooks.flushIotlbAll();
    this.flushFinish++;
    this.flushes++;
  }

  /** Flush now and release everything (domain teardown, or a test that wants the window closed). */
  drain(): void {
    this.flushIotlb();
    this._rings.forEach((r, i) => this._releaseFlushed(r, i));
  }

  private _timeout(): void {
    this._timerOn = false;
    this.flushIotlb();
    this._rings.forEach((r, i) => this._releaseFlushed(r, i));
  }

  /** fq_ring_free_locked. */
  private _releaseFlushed(ring: Ring, ringIdx: number): void {
    const finish = this.flushFinish;
    while (ring.head !== ring.tail) {
      const e = ring.entries[ring.head] as FqEntry;
      if (e.counter >= finish) break;
      this.longestWaitNs = Math.max(this.longestWaitNs, this._clock.now - e.queuedAt);
      this._hooks.release(e, ringIdx);
      ring.entries[ring.head] = undefined;
      ring.head = (ring.head + 1) & ring.mask;
    }
  }
}
