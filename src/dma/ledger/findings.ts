/**
 * @module dma/ledger/findings
 * What the access checks found: a device touching bytes it has no live mapping for, or against the
 * mapping's direction, and the CPU touching bytes the device owns. Kept in a bounded log, as the
 * kernel's printk ring is bounded, with a count of what was dropped.
 */
import type { LedgerEntry, LedgerRelease } from './entry.ts';

/** The kinds of access finding. */
export type AccessFindingKind = 'access-unmapped' | 'access-after-unmap' | 'access-direction' | 'access-other-device' | 'cpu-access-device-owned';

/** One bad access. */
export interface AccessFinding {
  readonly kind: AccessFindingKind;
  /** The device that made the access, or (for a CPU access) the device that owns the bytes. */
  readonly device: string;
  /** One line saying what happened, naming the mapping and the call that made it. */
  readonly message: string;
  /** Who accessed: a device's DMA engine or the CPU. */
  readonly by: 'device' | 'cpu';
  readonly access: 'read' | 'write';
  /** The accessed address: a DMA address for a device access, a physical one for the CPU. */
  readonly addr: number;
  readonly length: number;
  /** Virtual time, ns. */
  readonly time: number;
  /** The mapping involved (the one violated, unmapped, or another device's), when there is one. */
  readonly mapping?: LedgerEntry;
  /** For access-after-unmap: the unmap. */
  readonly unmap?: LedgerRelease;
  /** For an access the hardware refused: the IOMMU or bus fault, as the DMA engine reported it. */
  readonly fault?: string;
}

/** Findings kept at most; older ones are dropped (and counted) past it. */
export const FINDINGS_MAX = 4096;

/**
 * A bounded log of findings, oldest first.
 * @example log.add(finding); log.list(); log.dropped
 */
export class FindingLog {
  // INVARIANT: _items holds at most FINDINGS_MAX findings in time order; _dropped counts, per kind,
  //   the older ones removed to keep it so.
  private _items: AccessFinding[] = [];
  private readonly _dropped = new Map<AccessFindingKind, number>();

  add(f: AccessFinding): void {
    if (this._items.length >= FINDINGS_MAX) {
      const cut = this._items.length - FINDINGS_MAX / 2;
      for (let i = 0; i < cut; i++) {
        const k = (this._items[i] as AccessFinding).kind;
        this._dropped.set(k, (this._dropped.get(k) ?? 0) + 1);
      }
      this._items = this._items.slice(cut);
    }
    this._items.push(f);
  }

  /** The findings kept, oldest first. */
  list(): readonly AccessFinding[] {
    return this._items;
  }

  /** Findings dropped to keep the log bounded, per kind. */
  get dropped(): ReadonlyMap<AccessFindingKind, number> {
    return this._dropped;
  }

  /** Forget everything (a test that checked its findings and goes on). */
  clear(): void {
    this._items = [];
    this._dropped.clear();
  }
}
