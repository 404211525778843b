/**
 * @module device/dma-engine
 * The device side of DMA: a device reads and writes memory by DMA address. Each access goes
 * through the device's translation (direct: bus address = physical address; or an IOMMU domain).
 * A bad access is a fault result, never an exception: hardware does not crash the host.
 */
import type { Device } from './device.ts';
import { minNotZero } from './mask.ts';
import { pushBounded } from '../core/bounded.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { leValue, putLe } from '../core/bits.ts';
import { LeScratch, checkLeValue } from '../core/le-value.ts';

/** Faults a device's engine keeps. */
export const DMA_FAULTS_MAX = 1024;

/** Why a device access failed. */
export interface DmaFault {
  readonly device: string;
  /** The DMA address of the access. */
  readonly iova: number;
  readonly length: number;
  readonly access: 'read' | 'write';
  /** not-ram: neither RAM nor device memory answers at the address (a PCIe Unsupported Request). */
  readonly reason: 'beyond-mask' | 'not-ram' | 'unmapped' | 'permission' | 'stale';
  readonly detail?: string;
}

/** A physical range an access resolves to. */
export interface PhysRange { readonly phys: number; readonly length: number }

/** The outcome of translating one access. */
export type Translation = { readonly ok: true; readonly ranges: readonly PhysRange[] } | { readonly ok: false; readonly fault: DmaFault };

/** How a device's DMA addresses become physical addresses. */
export interface DmaTranslator {
  readonly kind: string;
  translate(dev: Device, addr: number, length: number, access: 'read' | 'write'): Translation;
}

/**
 * Watches every device access after translation (the machine's DMA ledger checks it against the
 * device's live mappings). It only records: the access's outcome stays what the hardware decided.
 */
export interface DmaAccessChecker {
  check(dev: Device, addr: number, length: number, access: 'read' | 'write', t: Translation): void;
}

/** Result of a device access. */
export type DmaResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly fault: DmaFault };

/**
 * Direct translation (no IOMMU): the bus address is the physical address; the device cannot drive
 * address bits above its mask or bus limit, and only RAM answers.
 */
export const directTranslator: DmaTranslator = {
  kind: 'direct',
  translate(dev, addr, length, access) {
    const limit = minNotZero(dev.dma_mask ?? 0, dev.bus_dma_limit);
    const last = addr + Math.max(length, 1) - 1;
    if (dev.dma_mask === null || last > limit) {
      return { ok: false, fault: { device: dev.name, iova: addr, length, access, reason: 'beyond-mask' } };
    }
    if (!dev.host.memory.answers(addr, length)) return { ok: false, fault: { device: dev.name, iova: addr, length, access, reason: 'not-ram' } };
    return { ok: true, ranges: [{ phys: addr, length }] };
  },
};

/** An access a device could make: a bus address (or DMA_MAPPING_ERROR, which faults) and a length up to 4 GiB. */
function checkAccess(addr: unknown, length: unknown, fn: string): void {
  if (typeof addr !== 'number' || !(addr === -1 || (Number.isSafeInteger(addr) && addr >= 0))) {
    throw new KernelError(EINVAL, `DmaEngine.${fn}`, `expected a DMA address, got ${typeof addr === 'number' ? String(addr) : typeof addr}`, 'addr');
  }
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0 || length > 2 ** 32) {
    throw new KernelError(EINVAL, `DmaEngine.${fn}`, `expected a length up to 4 GiB, got ${typeof length === 'number' ? String(length) : typeof length}`, 'length');
  }
}

/** An iterable of { addr, length } segments, else EINVAL. */
function checkSegments(segments: unknown, fn: string): void {
  if (typeof segments !== 'object' || segments === null || typeof (segments as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    throw new KernelError(EINVAL, `DmaEngine.${fn}`, 'expected an iterable of { addr, length }', 'segments');
  }
}

/**
 * The DMA engine of one device.
 * @example
 * const r = dev.dma.write(dmaAddr, bytes); if (!r.ok) console.log(r.fault.reason);
 */
export class DmaEngine {
  private readonly _dev: Device;
  /** The translation in force (set by the IOMMU layer when the device sits behind one). */
  translator: DmaTranslator = directTranslator;
  /** Faults this device has taken, oldest first: the newest DMA_FAULTS_MAX (older ones are counted in faultsDropped). */
  readonly faults: DmaFault[] = [];
  /** Faults dropped from `faults` to keep it bounded. */
  faultsDropped = 0;
  /** Bytes moved. */
  bytesRead = 0;
  bytesWritten = 0;
  /** Checks each access against the device's live mappings (null: unchecked). */
  checker: DmaAccessChecker | null = null;
  /** Called on every fault (the machine records it in the trace). */
  onFault: ((fault: DmaFault) => void) | undefined;
  /** The bytes of register-style accesses (readLe*, writeLe*). */
  private readonly _le = new LeScratch();

  constructor(dev: Device) {
    this._dev = dev;
  }

  /**
   * Read `length` bytes at DMA address `addr` (device reads memory: a TO_DEVICE transfer).
   * @throws KernelError EINVAL for an address or length no device could put on the bus (a device
   *   programmed with DMA_MAPPING_ERROR is a fault result, as on hardware).
   */
  read(addr: number, length: number): DmaResult<Uint8Array> {
    checkAccess(addr, length, 'read');
    const out = new Uint8Array(length);
    const r = this._readInto(addr, out, 0, length);
    return r === null ? { ok: true, value: out } : r;
  }

  /**
   * Read `dst.length - dstOff` bytes at DMA address `addr` into the caller's buffer (no allocation:
   * what a device streaming into its own FIFO does). The result's value is the bytes read.
   * @example const r = dev.dma.readInto(addr, frame); if (!r.ok) console.log(r.fault.reason);
   */
  readInto(addr: number, dst: Uint8Array, dstOff = 0): DmaResult<number> {
    if (!(dst instanceof Uint8Array)) throw new KernelError(EINVAL, 'DmaEngine.readInto', `expected a Uint8Array, got ${dst === null ? 'null' : typeof dst}`, 'dst');
    if (typeof dstOff !== 'number' || !Number.isSafeInteger(dstOff) || dstOff < 0 || dstOff > dst.length) throw new KernelError(EINVAL, 'DmaEngine.readInto', `offset ${String(dstOff)} outside the buffer`, 'dstOff');
    const length = dst.length - dstOff;
    checkAccess(addr, length, 'readInto');
    const r = this._readInto(addr, dst, dstOff, length);
    return r === null ? { ok: true, value: length } : r;
  }

  /** The read itself, after the checks: null on success, else the fault result. */
  private _readInto(addr: number, dst: Uint8Array, dstOff: number, length: number): DmaResult<never> | null {
    const t = this._translate(addr, length, 'read');
    this.checker?.check(this._dev, addr, length, 'read', t);
    if (!t.ok) return this._fault(t.fault);
    // The translation found RAM or device memory behind every range: the unchecked copy (the
    // checked one re-walked the RAM ranges per call).
    const mem = this._dev.host.memory.raw;
    let at = dstOff;
    for (const r of t.ranges) {
      mem.readPhysInto(r.phys, dst, at, r.length);
      at += r.length;
    }
    this.bytesRead += length;
    return null;
  }

  /**
   * Read a little-endian 16/32/64-bit value at DMA address `addr`, as a device fetching a
   * descriptor does (a PRP entry, an SGL descriptor, a doorbell record).
   * @example const prp = dev.dma.readLe64(listDma + 8 * i); if (prp.ok) use(prp.value);
   */
  readLe16(addr: number): DmaResult<number> { return this._readLe(addr, 2); }
  /** @see readLe16 */
  readLe32(addr: number): DmaResult<number> { return this._readLe(addr, 4); }
  /** @see readLe16; a value of 2^53 or more is EINVAL (read two 32-bit halves). */
  readLe64(addr: number): DmaResult<number> { return this._readLe(addr, 8); }

  /** Write a little-endian 16/32/64-bit value at DMA address `addr` (a completion entry, a status word). @example dev.dma.writeLe32(cqDma + 12, status) */
  writeLe16(addr: number, v: number): DmaResult<number> { return this._writeLe(addr, v, 2, 'writeLe16'); }
  /** @see writeLe16 */
  writeLe32(addr: number, v: number): DmaResult<number> { return this._writeLe(addr, v, 4, 'writeLe32'); }
  /** @see writeLe16 */
  writeLe64(addr: number, v: number): DmaResult<number> { return this._writeLe(addr, v, 8, 'writeLe64'); }

  private _readLe(addr: number, bytes: 2 | 4 | 8): DmaResult<number> {
    checkAccess(addr, bytes, 'read');
    const buf = this._le.take(bytes);
    try {
      const r = this._readInto(addr, buf, 0, bytes);
      if (r !== null) return r;
      // The address is formatted only for leValue's error (a value of 2^53 or more).
      const where = bytes === 8 && (buf[7] as number) >= 0x20 ? `DMA 0x${addr.toString(16)}` : '';
      return { ok: true, value: leValue(buf, bytes, `DmaEngine.readLe${8 * bytes}`, 'addr', where) };
    } finally {
      this._le.give();
    }
  }

  private _writeLe(addr: number, v: number, bytes: 2 | 4 | 8, fn: string): DmaResult<number> {
    const buf = this._le.take(bytes);
    try {
      putLe(buf, 0, checkLeValue(v, bytes, `DmaEngine.${fn}`), bytes);
      return this.write(addr, buf);
    } finally {
      this._le.give();
    }
  }

  /** Write `bytes` at DMA address `addr` (device writes memory: a FROM_DEVICE transfer). */
  write(addr: number, bytes: Uint8Array): DmaResult<number> {
    if (!(bytes instanceof Uint8Array)) throw new KernelError(EINVAL, 'DmaEngine.write', `expected a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`, 'bytes');
    checkAccess(addr, bytes.length, 'write');
    const t = this._translate(addr, bytes.length, 'write');
    this.checker?.check(this._dev, addr, bytes.length, 'write', t);
    if (!t.ok) return this._fault(t.fault);
    const mem = this._dev.host.memory.raw;
    let at = 0;
    for (const r of t.ranges) {
      mem.writePhys(r.phys, bytes, at, r.length);
      at += r.length;
    }
    this.bytesWritten += bytes.length;
    return { ok: true, value: bytes.length };
  }

  /**
   * Gather: read a list of DMA segments into one buffer, stopping at the first fault.
   * @example dev.dma.readSegments([{ addr, length }, ...])
   */
  readSegments(segments: Iterable<{ readonly addr: number; readonly length: number }>): DmaResult<Uint8Array> {
    checkSegments(segments, 'readSegments');
    const parts: Uint8Array[] = [];
    let total = 0;
    for (const s of segments) {
      const r = this.read(s.addr, s.length);
      if (!r.ok) return r;
      parts.push(r.value);
      total += s.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return { ok: true, value: out };
  }

  /**
   * Gather into the caller's buffer: read the segments in order into `dst` (up to its length),
   * stopping at the first fault. The value is the bytes read.
   * @example dev.dma.readSegmentsInto(segs, buf)
   */
  readSegmentsInto(segments: Iterable<{ readonly addr: number; readonly length: number }>, dst: Uint8Array): DmaResult<number> {
    checkSegments(segments, 'readSegmentsInto');
    if (!(dst instanceof Uint8Array)) throw new KernelError(EINVAL, 'DmaEngine.readSegmentsInto', `expected a Uint8Array, got ${dst === null ? 'null' : typeof dst}`, 'dst');
    let at = 0;
    for (const s of segments) {
      if (at >= dst.length) break;
      const n = Math.min(s.length, dst.length - at);
      checkAccess(s.addr, n, 'readSegmentsInto');
      const r = this._readInto(s.addr, dst, at, n);
      if (r !== null) return r;
      at += n;
    }
    return { ok: true, value: at };
  }

  /** Scatter: write `bytes` across a list of DMA segments in order, stopping at the first fault. */
  writeSegments(segments: Iterable<{ readonly addr: number; readonly length: number }>, bytes: Uint8Array): DmaResult<number> {
    checkSegments(segments, 'writeSegments');
    if (!(bytes instanceof Uint8Array)) throw new KernelError(EINVAL, 'DmaEngine.writeSegments', `expected a Uint8Array, got ${bytes === null ? 'null' : typeof bytes}`, 'bytes');
    let at = 0;
    for (const s of segments) {
      if (at >= bytes.length) break;
      const n = Math.min(s.length, bytes.length - at);
      const r = this.write(s.addr, bytes.subarray(at, at + n));
      if (!r.ok) return r;
      at += n;
    }
    return { ok: true, value: at };
  }

  /** DMA_MAPPING_ERROR (all ones) is above every mask: the bus refuses it before any translation. */
  private _translate(addr: number, length: number, access: 'read' | 'write'): Translation {
    if (addr === -1) return { ok: false, fault: { device: this._dev.name, iova: addr, length, access, reason: 'beyond-mask', detail: 'DMA_MAPPING_ERROR (all address bits set)' } };
    return this.translator.translate(this._dev, addr, length, access);
  }

  private _fault(fault: DmaFault): DmaResult<never> {
    this.faultsDropped += pushBounded(this.faults, fault, DMA_FAULTS_MAX);
    this.onFault?.(fault);
    return { ok: false, fault };
  }
}
