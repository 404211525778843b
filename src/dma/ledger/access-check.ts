/**
 * @module dma/ledger/access-check
 * The two access checks no kernel tool has, run against the ledger:
 * - every device access (dev.dma read or write) must fall inside a live mapping of that device that
 *   allows its direction; otherwise it is `access-unmapped`, `access-after-unmap` (naming the unmap),
 *   `access-direction` or `access-other-device`. The hardware outcome (an IOMMU fault, a stale IOTLB
 *   hit, a silent direct write) is unchanged: the finding is recorded on top.
 * - the CPU must not touch bytes of a live streaming mapping while the device owns them (between
 *   map or sync_for_device and sync_for_cpu or unmap): any access for DMA_FROM_DEVICE and
 *   DMA_BIDIRECTIONAL, a write for DMA_TO_DEVICE. Coherent memory is exempt.
 */
import type { Device } from '../../device/device.ts';
import type { DmaAccessChecker, Translation } from '../../device/dma-engine.ts';
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, dmaDirectionName } from '../api/direction.ts';
import type { LedgerEntry } from './entry.ts';
import type { AccessFinding, AccessFindingKind } from './findings.ts';
import { DmaLedger } from './ledger.ts';
import type { DeviceLedger } from './ledger.ts';
import type { IndexedRange } from './range-index.ts';
import { checkFunction, notInstance } from '../../core/args.ts';

type Access = 'read' | 'write';

/** May the device make this access through a mapping of direction `dir`? */
function allows(dir: number, access: Access): boolean {
  return dir === DMA_BIDIRECTIONAL || (access === 'read' ? dir === DMA_TO_DEVICE : dir === DMA_FROM_DEVICE);
}

// Stored once: the fast path passes them without making a closure per access.
const readable = (e: LedgerEntry): boolean => e.dir === DMA_BIDIRECTIONAL || e.dir === DMA_TO_DEVICE;
const writable = (e: LedgerEntry): boolean => e.dir === DMA_BIDIRECTIONAL || e.dir === DMA_FROM_DEVICE;

const hex = (n: number): string => (n < 0 ? 'DMA_MAPPING_ERROR' : `0x${n.toString(16)}`);
const verb = (access: Access): string => (access === 'write' ? 'wrote' : 'read');

/** A sub-range of the access and the live entries (of the accessing device) over it. */
interface Piece { readonly start: number; readonly end: number; readonly entry: LedgerEntry | undefined }

/**
 * Split [a, b) into pieces: covered by an entry allowing the access (entry set, allowed), covered
 * only by entries refusing it, or covered by none. Returns the first refused and first uncovered piece.
 */
function coverage(d: DeviceLedger, a: number, b: number, access: Access): { refused: Piece | undefined; uncovered: Piece | undefined } {
  const found: IndexedRange<LedgerEntry>[] = [];
  d.dma.collect(a, b, found);
  const spans = found.map((r) => ({ start: Math.max(r.start, a), end: Math.min(r.end, b), entry: r.value, ok: allows(r.value.dir, access) }));
  let refused: Piece | undefined;
  let uncovered: Piece | undefined;
  // Walk [a, b) in steps: at each point, the furthest an allowing span reaches, else any span.
  let at = a;
  while (at < b && (refused === undefined || uncovered === undefined)) {
    let okEnd = at;
    let anyEnd = at;
    let any: LedgerEntry | undefined;
    let nextStart = b;
    for (const s of spans) {
      if (s.start <= at && s.end > at) {
        if (s.ok) okEnd = Math.max(okEnd, s.end);
        else if (s.end > anyEnd) { anyEnd = s.end; any = s.entry; }
      } else if (s.start > at) nextStart = Math.min(nextStart, s.start);
    }
    if (okEnd > at) { at = okEnd; continue; }
    if (anyEnd > at) {
      refused ??= { start: at, end: anyEnd, entry: any };
      at = anyEnd;
      continue;
    }
    uncovered ??= { start: at, end: nextStart, entry: undefined };
    at = nextStart;
  }
  return { refused, uncovered };
}

/** The physical ranges a translated access reached for its bytes [off, off+len). */
function physOf(t: Translation, off: number, len: number): { phys: number; length: number }[] {
  if (!t.ok) return [];
  const out: { phys: number; length: number }[] = [];
  let at = 0;
  for (const r of t.ranges) {
    const lo = Math.max(off, at);
    const hi = Math.min(off + len, at + r.length);
    if (hi > lo) out.push({ phys: r.phys + (lo - at), length: hi - lo });
    at += r.length;
  }
  return out;
}

/** Another device's live entry over any of these physical ranges (its buffer or its bounce slot). */
function otherOwner(ledger: DmaLedger, dev: Device, ranges: { phys: number; length: number }[]): LedgerEntry | undefined {
  const found: IndexedRange<LedgerEntry>[] = [];
  for (const r of ranges) {
    ledger.phys.collect(r.phys, r.phys + r.length, found);
    ledger.bounce.collect(r.phys, r.phys + r.length, found);
  }
  return found.find((r) => r.value.device !== dev)?.value;
}

/**
 * The device-access checker for one device of a machine's ledger: install it as `dev.dma.checker`.
 * @example dev.dma.checker = deviceAccessChecker(machine.dma.ledger, dev, () => machine.clock.now)
 */
export function deviceAccessChecker(ledger: DmaLedger, dev: Device, now: () => number): DmaAccessChecker {
  if (!(ledger instanceof DmaLedger)) throw notInstance(ledger, DmaLedger, 'deviceAccessChecker', 'ledger');
  checkFunction(now, 'deviceAccessChecker', 'now');
  const d = ledger.deviceLedger(dev);
  const add = (kind: AccessFindingKind, access: Access, addr: number, length: number, text: string, extra: Partial<AccessFinding>, fault: string | undefined): void => {
    const message = `${dev.name} ${verb(access)} ${length} bytes at DMA ${hex(addr)}: ${text}${fault === undefined ? '' : ` [hardware: ${fault}]`}`;
    ledger.findings.add({ kind, device: dev.name, by: 'device', access, addr, length, time: now(), message, ...extra, ...(fault === undefined ? {} : { fault }) });
  };
  // The last live mapping range that held a whole access: devices stream through one buffer, so
  // checking it first skips the index (measured: a 64-byte device write 101 -> ~90 ns, ~85 unchecked).
  // INVARIANT: last is null or an entry whose range [lastStart, lastEnd) once held a whole access;
  //   kept on the checker object (not in closure variables) so a machine snapshot restores it.
  const checker: DmaAccessChecker & { last: LedgerEntry | null; lastStart: number; lastEnd: number } = {
    last: null,
    lastStart: 0,
    lastEnd: 0,
    check(_dev, addr, length, access, t) {
      const end = addr + (length > 0 ? length : 1);
      const last = this.last;
      if (t.ok && last !== null && addr >= this.lastStart && end <= this.lastEnd && last.releasedApi === null && !last.cpuOwnsAll && last.cpuOwned === null && !last.awaitingSync
        && (access === 'read' ? readable(last) : writable(last))) return;
      ledger.flush();
      // The common case: one live mapping holds the whole access, allows it, and the device owns it.
      if (t.ok) {
        const r = d.dma.covering(addr, end, access === 'read' ? readable : writable);
        if (r !== undefined && !r.value.cpuOwnsAnyDma(addr, end) && !r.value.awaitingSync) {
          this.last = r.value;
          this.lastStart = r.start;
          this.lastEnd = r.end;
          return;
        }
      }
      const fault = t.ok ? undefined : `${t.fault.reason}${t.fault.detail === undefined ? '' : `, ${t.fault.detail}`}`;
      const { refused, uncovered } = coverage(d, addr, end, access);
      if (refused !== undefined) {
        const e = refused.entry as LedgerEntry;
        add('access-direction', access, addr, length,
          `${hex(refused.start)}-${hex(refused.end - 1)} belongs to ${e.describe()}; a ${dmaDirectionName(e.dir)} mapping lets the device ${e.dir === DMA_TO_DEVICE ? 'only read' : 'only write'}`,
          { mapping: e }, fault);
      }
      if (uncovered !== undefined) {
        const gone = ledger.releasedCovering(dev, uncovered.start, uncovered.end);
        const unmap = gone?.released;
        const other = otherOwner(ledger, dev, physOf(t, uncovered.start - addr, uncovered.end - uncovered.start));
        if (gone !== undefined && unmap != null) {
          // The stale address may already reach a buffer someone else mapped since: say whose.
          const now = other === undefined ? '' : `; the bytes now belong to ${other.device.name}'s mapping: ${other.describe()}`;
          add('access-after-unmap', access, addr, length,
            `${hex(uncovered.start)}-${hex(uncovered.end - 1)} was unmapped by ${unmap.api} at t=${unmap.time} ns (${gone.describe()})${now}`,
            { mapping: gone, unmap }, fault);
          return;
        }
        if (other !== undefined) {
          add('access-other-device', access, addr, length, `the bytes belong to ${other.device.name}'s mapping: ${other.describe()}`, { mapping: other }, fault);
          return;
        }
        // An overrun or underrun of a mapping the access starts or ends in: name it.
        const near = nearest(d, addr, end);
        add('access-unmapped', access, addr, length,
          `no live mapping of ${dev.name} covers ${hex(uncovered.start)}-${hex(uncovered.end - 1)}${near === undefined ? '' : `; the access runs outside ${near.describe()}`}`,
          near === undefined ? {} : { mapping: near }, fault);
        return;
      }
      if (refused !== undefined) return;
      // Every byte lies in a live mapping that allows the access. Either the CPU owns some of them
      // (synced for the CPU and not handed back), or the hardware refused the access anyway.
      const unsynced = unsyncedOver(d, addr, end);
      if (unsynced !== undefined) {
        add('access-unmapped', access, addr, length,
          `the bytes belong to ${unsynced.describe()}, linked by dma_iova_link but not yet made visible to the device: dma_iova_sync must come first (an IOMMU that caches misses, or needs iotlb_sync_map, faults here)`,
          { mapping: unsynced }, fault);
        return;
      }
      const owned = cpuOwnedOver(d, addr, end);
      if (owned !== undefined) {
        add('access-unmapped', access, addr, length, owned.type === 'noncoherent'
          ? `the bytes belong to ${owned.describe()}, which the CPU owns (noncoherent memory starts with the CPU; dma_sync_*_for_cpu gives it back to the CPU) until dma_sync_*_for_device hands it to the device`
          : `the bytes belong to ${owned.describe()}, which the driver gave to the CPU (dma_sync_*_for_cpu) and has not given back (dma_sync_*_for_device)`,
          { mapping: owned }, fault);
        return;
      }
      if (!t.ok) {
        add(t.fault.reason === 'permission' ? 'access-direction' : 'access-unmapped', access, addr, length,
          `a live mapping allows the access but the device could not make it`, {}, fault);
      }
    },
  };
  return checker;
}

/** A live mapping of the device over [a, b) whose bytes there the CPU owns. */
function cpuOwnedOver(d: DeviceLedger, a: number, b: number): LedgerEntry | undefined {
  const found: IndexedRange<LedgerEntry>[] = [];
  d.dma.collect(a, b, found);
  return found.find((r) => r.value.cpuOwnsAnyDma(Math.max(a, r.start), Math.min(b, r.end)))?.value;
}

/** A live IOVA link of the device over [a, b) that dma_iova_sync has not covered yet. */
function unsyncedOver(d: DeviceLedger, a: number, b: number): LedgerEntry | undefined {
  const found: IndexedRange<LedgerEntry>[] = [];
  d.dma.collect(a, b, found);
  return found.find((r) => r.value.awaitingSync)?.value;
}

/** A live mapping of the device overlapping [a, b) (the one an overrun ran out of). */
function nearest(d: DeviceLedger, a: number, b: number): LedgerEntry | undefined {
  const found: IndexedRange<LedgerEntry>[] = [];
  d.dma.collect(a, b, found);
  return found[0]?.value;
}

/**
 * The CPU-ownership check: call on every CPU access through the machine's memory API.
 * @example machine.mm.onCpuAccess = cpuOwnershipChecker(machine.dma.ledger, () => machine.clock.now)
 */
export function cpuOwnershipChecker(ledger: DmaLedger, now: () => number): (phys: number, len: number, write: boolean) => void {
  let last: AccessFinding | undefined;
  const found: IndexedRange<LedgerEntry>[] = [];
  const named: LedgerEntry[] = [];
  return (phys, len, write) => {
    if (!ledger.hasStreaming || len <= 0) return;
    ledger.flush();
    const end = phys + len;
    if (!ledger.phys.overlaps(phys, end)) return;
    found.length = 0;
    ledger.phys.collect(phys, end, found);
    // Every mapping whose bytes the access touched is named once, with the part of the access that
    // fell on it: one call may span several mappings (a copy of physically adjacent pages joined
    // into one span named only the first, where page by page named each: a helper's review).
    named.length = 0;
    for (const r of found) {
      const e = r.value;
      // MMIO mapped for a peer (dma_map_resource) has no buffer ownership: registers, doorbells.
      if (e.type === 'coherent' || e.api === 'dma_map_resource' || (!write && e.dir === DMA_TO_DEVICE)) continue;
      const lo = Math.max(phys, r.start);
      const hi = Math.min(end, r.end);
      if (named.includes(e) || !e.deviceOwnsAny(lo, hi)) continue;
      named.push(e);
      const access: Access = write ? 'write' : 'read';
      const t = now();
      // One finding per event: a buffer read page by page repeats the same access.
      if (last !== undefined && last.mapping === e && last.access === access && last.time === t && ledger.findings.list().at(-1) === last) continue;
      const rule = e.dir === DMA_TO_DEVICE
        ? 'the CPU may write a DMA_TO_DEVICE buffer only after dma_sync_*_for_cpu or unmap'
        : `the CPU may touch a ${dmaDirectionName(e.dir)} buffer only after dma_sync_*_for_cpu or unmap`;
      last = {
        kind: 'cpu-access-device-owned', device: e.device.name, by: 'cpu', access, addr: lo, length: hi - lo, time: t, mapping: e,
        message: `CPU ${write ? 'wrote' : 'read'} ${hi - lo} bytes at phys ${hex(lo)} while ${e.device.name} owns them (${e.describe()}): ${rule}`,
      };
      ledger.findings.add(last);
    }
  };
}
