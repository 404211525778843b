/**
 * @module mm/page-meta
 * Per-page metadata in typed arrays indexed by pfn: 3 bytes a page frame (state+order, owner,
 * refcount). Untouched entries cost nothing: the OS commits typed-array pages on first write.
 */

/** Page state bits (low nibble of `state`); the high nibble holds the order of an allocated head. */
export const PG_ALLOCATED = 0x1;
export const PG_HEAD = 0x2;
/** Not RAM (a hole) or reserved at boot: never handed out. */
export const PG_RESERVED = 0x4;

/** Who owns an allocated page (for reports and the auditor). */
export const OWNERS = ['none', 'pages', 'vmalloc', 'kmalloc', 'fragmenter', 'sg', 'pgtable', 'swiotlb', 'coherent', 'reserved', 'pages-exact'] as const;
export type Owner = (typeof OWNERS)[number];
export const OWNER_ID: Readonly<Record<Owner, number>> = Object.fromEntries(OWNERS.map((o, i) => [o, i])) as Record<Owner, number>;

/**
 * The page metadata arrays of one machine.
 * @example meta.state[pfn] & PG_ALLOCATED
 */
export class PageMeta {
  // INVARIANT: state[pfn] is 0 for a free RAM page; PG_RESERVED for holes and boot reservations;
  //   PG_ALLOCATED|PG_HEAD|(order<<4) for the first page of an allocated block, PG_ALLOCATED for its others.
  // INVARIANT: owner[pfn] and refcount[pfn] are meaningful only while PG_ALLOCATED is set
  //   (refcount on the head page only).
  readonly state: Uint8Array;
  readonly owner: Uint8Array;
  readonly refcount: Uint8Array;

  constructor(maxPfn: number) {
    this.state = new Uint8Array(maxPfn);
    this.owner = new Uint8Array(maxPfn);
    this.refcount = new Uint8Array(maxPfn);
  }

  /** Mark [pfn, pfn + 2^order) allocated as one block owned by `owner`. */
  markAllocated(pfn: number, order: number, owner: number): void {
    const n = 2 ** order;
    this.state[pfn] = PG_ALLOCATED | PG_HEAD | (order << 4);
    this.refcount[pfn] = 1;
    this.owner.fill(owner, pfn, pfn + n);
    if (n > 1) this.state.fill(PG_ALLOCATED, pfn + 1, pfn + n);
  }

  /** Mark [pfn, pfn + 2^order) free. */
  markFree(pfn: number, order: number): void {
    const n = 2 ** order;
    this.state.fill(0, pfn, pfn + n);
    this.owner.fill(0, pfn, pfn + n);
    this.refcount[pfn] = 0;
  }

  /** Order of the allocated block headed at `pfn`, or -1 when `pfn` is not an allocated head. */
  headOrder(pfn: number): number {
    const s = this.state[pfn] ?? 0;
    return (s & (PG_ALLOCATED | PG_HEAD)) === (PG_ALLOCATED | PG_HEAD) ? s >> 4 : -1;
  }
}
