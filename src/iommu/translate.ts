/**
 * @module iommu/translate
 * What the IOMMU does with a device access: translate [iova, iova + length) page by page, IOTLB
 * first, page-table walk on a miss (filling the IOTLB), and check the permission the access needs.
 * The result lists the physical ranges (physically contiguous pieces merged) or the fault that
 * stopped it (reason 'unmapped' or 'permission', at the first faulting address). A walk that faults
 * caches nothing, as QEMU's VT-d model.
 *
 * Stale translations: an IOTLB entry keeps serving after its PTE is cleared, until invalidated. Each
 * entry remembers the page table's epoch (bumped whenever an entry is cleared or replaced) when it was
 * filled or last confirmed; a hit from an older epoch is checked against the page table, and if the
 * PTE is gone or differs the access is still served from the entry (that is the hazard) and the
 * result is flagged `stale`, with the first such address. Memory itself is not touched here.
 */
import { type Iotlb } from './iotlb.ts';
import type { IoPgtableOps } from './pgtable-ops.ts';
import { POW2 } from './pgtable-geometry.ts';
import { IOMMU_READ, IOMMU_WRITE, type DmaAccess } from './pgtable-prot.ts';

// Local copies of imported bindings used on hot paths: when a script loads dmasim as CommonJS (tsx
// does so for a .ts file outside an ESM package), every read of an imported binding is a getter call.
const P2 = POW2;
const READ = IOMMU_READ;
const WRITE = IOMMU_WRITE;

/** Why a translation failed. @example if (r.fault?.reason === 'permission') ... */
export type TranslateFaultReason = 'unmapped' | 'permission';

/**
 * A translation fault: the address, the access, why.
 * @example translate(domain, 0x2000, 8, 'read').fault // { iova: 0x2000, access: 'read', reason: 'unmapped' }
 */
export interface TranslateFault {
  readonly iova: number;
  readonly access: DmaAccess;
  readonly reason: TranslateFaultReason;
}

/**
 * What translation needs: the domain's page table, the IOMMU's IOTLB (null: none), the domain's
 * address-space id. A {@link PagingDomain} is one.
 * @example translate(domain, iova, 4096, 'read')
 */
export interface TranslateTarget {
  readonly pgtable: IoPgtableOps;
  readonly iotlb: Iotlb | null;
  readonly asid: number;
}

/** One physical range of a translation. @example r.ranges() // [{ phys: 0x5800, len: 0x800 }] */
export interface PhysRange {
  readonly phys: number;
  readonly len: number;
}

/**
 * The outcome of {@link translate}; reusable (pass it back in to avoid allocation).
 * @example
 * const r = translate(domain, iova, 8192, 'write');
 * if (r.ok) for (let i = 0; i < r.nranges; i++) copy(r.phys[i], r.len[i]);
 */
export class TranslateResult {
  // INVARIANT: ranges 0..nranges-1 are in access order, each non-empty; consecutive ranges are not
  //   physically contiguous (they would have been merged).
  // INVARIANT: ok === (fault === null); on a fault, the ranges cover what translated before it.
  ok = true;
  nranges = 0;
  phys: Float64Array = new Float64Array(4);
  len: Float64Array = new Float64Array(4);
  fault: TranslateFault | null = null;
  /** Some page was served only by a stale IOTLB entry (its PTE gone or changed). */
  stale = false;
  /** First address served stale, or -1. */
  staleIova = -1;
  /** IOTLB hits and misses of this translation. */
  hits = 0;
  misses = 0;

  /** Total bytes translated. @example translate(domain, iova, 8192, 'read').bytes // 8192 when mapped */
  get bytes(): number {
    let n = 0;
    for (let i = 0; i < this.nranges; i++) n += this.len[i] as number;
    return n;
  }

  /** The ranges as objects (for reports and tests). @example r.ranges()[0]?.phys */
  ranges(): PhysRange[] {
    const out: PhysRange[] = [];
    for (let i = 0; i < this.nranges; i++) out.push({ phys: this.phys[i] as number, len: this.len[i] as number });
    return out;
  }

  /** Double the room for ranges, keeping the first `nranges`. @example r.grow(); r.phys.length // 8 */
  grow(): void {
    const n = this.phys.length * 2;
    const p = new Float64Array(n);
    p.set(this.phys);
    this.phys = p;
    const l = new Float64Array(n);
    l.set(this.len);
    this.len = l;
  }
}

/**
 * Translate a device access of `length` bytes at `iova`.
 * @param out a result to reuse; a new one otherwise.
 * @example
 * const r = translate(domain, 0x1000, 0x2000, 'read');
 * r.ok ? r.ranges() : r.fault // { iova, access: 'read', reason: 'unmapped' }
 */
export function translate(target: TranslateTarget, iova: number, length: number, access: DmaAccess, out: TranslateResult = new TranslateResult()): TranslateResult {
  const need = access === 'write' ? WRITE : READ;
  const pt = target.pgtable;
  const tlb = target.iotlb;
  const asid = target.asid;
  if (tlb !== null && length > 0) {
    // Fast path (small enough to inline): one page, cached, confirmed at the current epoch, permitted.
    const slot = tlb.peek(asid, iova);
    if (slot >= 0) {
      const base = tlb.pageIova[slot] as number;
      if (iova + length <= base + (tlb.pageSize[slot] as number) && tlb.epoch[slot] === pt.epoch && ((tlb.perm[slot] as number) & need) !== 0) {
        tlb.hits++;
        out.ok = true;
        out.fault = null;
        out.stale = false;
        out.staleIova = -1;
        out.phys[0] = (tlb.pagePhys[slot] as number) + (iova - base);
        out.len[0] = length;
        out.nranges = 1;
        out.hits = 1;
        out.misses = 0;
        return out;
      }
    }
  }
  return translateWalk(pt, tlb, asid, iova, length, access, need, out);
}

/** The general case: page by page, IOTLB then walk, stale checks, merging. */
function translateWalk(pt: IoPgtableOps, tlb: Iotlb | null, asid: number, iova: number, length: number, access: DmaAccess, need: number, out: TranslateResult): TranslateResult {
  out.ok = true;
  out.fault = null;
  out.stale = false;
  out.staleIova = -1;
  let hits = 0;
  let misses = 0;
  let n = 0;
  let phys = out.phys;
  let lens = out.len;
  const end = iova + length;
  let pos = iova;
  while (pos < end) {
    let base: number;
    let size: number;
    let pagePhys: number;
    let prot: number;
    const slot = tlb === null ? -1 : tlb.lookup(asid, pos);
    if (slot >= 0 && tlb !== null) {
      hits++;
      const shift = tlb.keyShift[slot] as number;
      size = tlb.pageSize[slot] as number;
      base = tlb.pageIova[slot] as number;
      pagePhys = tlb.pagePhys[slot] as number;
      prot = tlb.perm[slot] as number;
      if (tlb.epoch[slot] !== pt.epoch) {
        if (pt.lookup(pos) && pt.walkPhys === pagePhys && pt.walkProt === prot && pt.walkShift === shift) {
          tlb.confirmEpoch(slot, pt.epoch);
        } else if (!out.stale) {
          out.stale = true;
          out.staleIova = pos;
        }
      }
    } else {
      misses++;
      if (!pt.lookup(pos)) return fail(out, n, hits, misses, pos, access, 'unmapped');
      base = pt.walkIova;
      size = P2[pt.walkShift] as number;
      pagePhys = pt.walkPhys;
      prot = pt.walkProt;
      if ((prot & need) !== 0 && tlb !== null) tlb.insert(asid, pos, pagePhys, prot, pt.walkShift, pt.epoch);
    }
    if ((prot & need) === 0) return fail(out, n, hits, misses, pos, access, 'permission');
    const pageEnd = base + size;
    const stop = end < pageEnd ? end : pageEnd;
    const p = pagePhys + (pos - base);
    if (n > 0 && (phys[n - 1] as number) + (lens[n - 1] as number) === p) {
      lens[n - 1] = (lens[n - 1] as number) + (stop - pos);
    } else {
      if (n === phys.length) {
        out.nranges = n;
        out.grow();
        phys = out.phys;
        lens = out.len;
      }
      phys[n] = p;
      lens[n] = stop - pos;
      n++;
    }
    pos = stop;
  }
  out.nranges = n;
  out.hits = hits;
  out.misses = misses;
  return out;
}

function fail(out: TranslateResult, n: number, hits: number, misses: number, iova: number, access: DmaAccess, reason: TranslateFaultReason): TranslateResult {
  out.ok = false;
  out.nranges = n;
  out.hits = hits;
  out.misses = misses;
  out.fault = { iova, access, reason };
  return out;
}
