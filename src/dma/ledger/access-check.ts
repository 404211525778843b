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
import { DMA_BIDIRECTIONAL, DMA_FROM_DEVICE, DMA_TO_DEVICE, dmaDirectionName } from '../direction.ts';
import type { LedgerEntry } from './entry.ts';
import type { AccessFinding, AccessFindingKind } from './findings.ts';
import type { DmaLedger } from './ledger.ts';

type Access = 'read' | 'write';

/** May the device make this access through a mapping of direction `dir`? */
function allows(dir: number, access: Access): boolean {
  return dir === DMA_BIDIRECTIONAL || (access === 'read' ? dir === DMA_TO_DEVICE : dir === DMA_FROM_DEVICE);
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const verb = (access: Access): string => (access === 'write' ? 'wrote' : 'read');

/** A sub-range of the access and the live entries (of the accessing device) over it. */
interface Piece { readonly start: number; readonly end: number; readonly entry: LedgerEntry | undefined }

/**
 * Split [a, b) into pieces: covered by an entry allowing the access (entry set, allowed), covered
 * only by entries refusing it, or covered by none. Returns the first refused and first uncovered piece.
 */
function coverage(ledger: DmaLedger, dev: Device, a: number, b: number, access: Access): { refused: Piece | undefined; uncovered: Piece | undefined } {
  const spans: { start: number; end: number; entry: LedgerEntry; ok: boolean }[] = [];
  ledger.queryDma(dev, a, b, (start, end, entry) => { spans.push({ start: Math.max(start, a), end: Math.min(end, b), entry, ok: allows(entry.dir, access) }); });
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
  let hit: LedgerEntry | undefined;
  const visit = (r: { value: LedgerEntry }): boolean => {
    if (r.value.device === dev) return false;
    hit = r.value;
    return true;
  };
  for (const r of ranges) {
    ledger.phys.query(r.phys, r.phys + r.length, visit);
    if (hit === undefined) ledger.bounce.query(r.phys, r.phys + r.length, visit);
    if (hit !== undefined) return hit;
  }
  return undefined;
}

/**
 * The device-access checker of a machine's ledger: install it as each device's `dev.dma.checker`.
 * @example dev.dma.checker = deviceAccessChecker(machine.dma.ledger)
 */
export function deviceAccessChecker(ledger: DmaLedger, now: () => number): DmaAccessChecker {
  const add = (dev: Device, kind: AccessFindingKind, access: Access, addr: number, length: number, text: string, extra: Partial<AccessFinding>, fault: string | undefined): void => {
    const message = `${dev.name} ${verb(access)} ${length} bytes at DMA ${hex(addr)}: ${text}${fault === undefined ? '' : ` [hardware: ${fault}]`}`;
    ledger.findings.add({ kind, device: dev.name, by: 'device', access, addr, length, time: now(), message, ...extra, ...(fault === undefined ? {} : { fault }) });
  };
  return {
    check(dev, addr, length, access, t) {
      const end = addr + Math.max(length, 1);
      if (t.ok) {
        // The common case: one live mapping holds the whole access and allows it.
        let fine = false;
        ledger.queryDma(dev, addr, end, (s, e, entry) => {
          if (s <= addr && e >= end && allows(entry.dir, access)) fine = true;
          return fine;
        });
        if (fine) return;
      }
      const fault = t.ok ? undefined : `${t.fault.reason}${t.fault.detail === undefined ? '' : `, ${t.fault.detail}`}`;
      const { refused, uncovered } = coverage(ledger, dev, addr, end, access);
      if (!t.ok && t.fault.reason === 'permission' && refused === undefined) {
        add(dev, 'access-direction', access, addr, length, 'the IOMMU refused the access direction', {}, fault);
        return;
      }
      if (refused !== undefined) {
        const e = refused.entry as LedgerEntry;
        add(dev, 'access-direction', access, addr, length,
          `${hex(refused.start)}-${hex(refused.end - 1)} belongs to ${e.describe()}; a ${dmaDirectionName(e.dir)} mapping lets the device ${e.dir === DMA_TO_DEVICE ? 'only read' : 'only write'}`,
          { mapping: e }, fault);
      }
      if (uncovered !== undefined) {
        const gone = ledger.releasedCovering(dev, uncovered.start, uncovered.end);
        if (gone !== undefined && gone.released !== null) {
          add(dev, 'access-after-unmap', access, addr, length,
            `${hex(uncovered.start)}-${hex(uncovered.end - 1)} was unmapped by ${gone.released.api} at t=${gone.released.time} ns (${gone.describe()})`,
            { mapping: gone, unmap: gone.released }, fault);
          return;
        }
        const other = otherOwner(ledger, dev, physOf(t, uncovered.start - addr, uncovered.end - uncovered.start));
        if (other !== undefined) {
          add(dev, 'access-other-device', access, addr, length, `the bytes belong to ${other.device.name}'s mapping: ${other.describe()}`, { mapping: other }, fault);
          return;
        }
        add(dev, 'access-unmapped', access, addr, length, `no live mapping of ${dev.name} covers ${hex(uncovered.start)}-${hex(uncovered.end - 1)}`, {}, fault);
        return;
      }
      if (!t.ok && refused === undefined) {
        // Every byte is inside a live mapping that allows it, yet the hardware refused the access.
        add(dev, 'access-unmapped', access, addr, length, 'a live mapping covers the bytes but the device could not reach them', {}, fault);
      }
    },
  };
}

/**
 * The CPU-ownership check: call on every CPU access through the machine's memory API.
 * @example machine.mm.onCpuAccess = cpuOwnershipChecker(machine.dma.ledger, () => machine.clock.now)
 */
export function cpuOwnershipChecker(ledger: DmaLedger, now: () => number): (phys: number, len: number, write: boolean) => void {
  let last: AccessFinding | undefined;
  return (phys, len, write) => {
    if (!ledger.hasStreaming || len <= 0) return;
    const end = phys + len;
    ledger.phys.query(phys, end, (r) => {
      const e = r.value;
      if (e.type === 'coherent' || (!write && e.dir === DMA_TO_DEVICE)) return false;
      const a = Math.max(phys, r.start);
      const b = Math.min(end, r.end);
      const off = e.type === 'single' ? a - (e.cpu[0] as { start: number }).start : 0;
      if (!e.deviceOwns(off, b - a)) return false;
      const access: Access = write ? 'write' : 'read';
      const t = now();
      // One finding per event: a buffer read page by page repeats the same access.
      if (last !== undefined && last.mapping === e && last.access === access && last.time === t && ledger.findings.list().at(-1) === last) return true;
      const rule = e.dir === DMA_TO_DEVICE
        ? 'the CPU may write a DMA_TO_DEVICE buffer only after dma_sync_*_for_cpu or unmap'
        : `the CPU may touch a ${dmaDirectionName(e.dir)} buffer only after dma_sync_*_for_cpu or unmap`;
      last = {
        kind: 'cpu-access-device-owned', device: e.device.name, by: 'cpu', access, addr: phys, length: len, time: t, mapping: e,
        message: `CPU ${write ? 'wrote' : 'read'} ${len} bytes at phys ${hex(phys)} while ${e.device.name} owns them (${e.describe()}): ${rule}`,
      };
      ledger.findings.add(last);
      return true;
    });
  };
}
