/**
 * @module sim/snapshot
 * Machine snapshots: `machine.snapshot()` captures every layer (memory contents copy-on-write, page
 * allocator, slabs, vmalloc, IOVA trees and caches, page tables, IOTLB, flush queues, swiotlb,
 * dma-debug, the ledger and its findings, the kernel log, fault injection, clock and RNG, buses,
 * devices, their drivers and whatever driver state hangs off the devices) and `restore()` puts it
 * all back in place, as often as asked: branch a simulation at an interesting moment and explore
 * both ways, or rerun one operation from the same state per injected failure.
 */
import { captureGraph, type GraphSnapshot } from '../core/snapshot.ts';
import type { MmAuditBase } from '../mm/audit.ts';

/** What a snapshot captured, and the way back to it. */
export class MachineSnapshot {
  /** The machine it belongs to (restoring it into another machine is EINVAL). */
  readonly machine: object;
  /** Virtual time (ns) at the capture. */
  readonly time: number;
  /** Objects recorded. */
  readonly objects: number;
  /** Bytes of typed-array state copied (memory contents are shared copy-on-write, not counted). */
  readonly bytes: number;
  private readonly _graph: GraphSnapshot;
  /**
   * What `machine.audit({ since })` checks changes from: set by `snapshot({ audit: true })` when the
   * machine audited clean at the capture, null otherwise (then `audit({ since })` is the full audit).
   * @example const snap = machine.snapshot({ audit: true }); if (snap.auditBase === null) console.log(machine.audit());
   */
  auditBase: MmAuditBase | null = null;

  /** @internal Machine.snapshot makes these. */
  constructor(machine: object, extra: readonly object[], time: number) {
    this.machine = machine;
    this.time = time;
    this._graph = captureGraph(extra.length === 0 ? machine : [machine, ...extra]);
    this.objects = this._graph.objects;
    this.bytes = this._graph.bytes;
  }

  /** @internal Machine.restore calls this after its checks. */
  restoreGraph(): void {
    this._graph.restore();
  }
}
