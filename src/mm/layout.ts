/**
 * @module mm/layout
 * Where the RAM is: one or more physical ranges (holes between them), cut into zones.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { parseSize, type Size } from '../core/size.ts';
import { PAGE_SIZE, ZONE_DMA32_LIMIT, ZONE_DMA_LIMIT } from './constants.ts';
import { MAX_PFN_LIMIT } from '../core/page.ts';
import { ZONE_NAMES, type ZoneName } from './gfp.ts';

/** A RAM range as the user writes it. */
export interface RamRangeSpec { readonly start: Size; readonly size: Size }

/** A device-memory range as the user writes it: a PCI BAR or other MMIO a peer device can reach. */
export interface DeviceMemorySpec { readonly start: Size; readonly size: Size; readonly name?: string }

/** A device-memory range in bytes: [start, end). */
export interface DeviceMemoryRange { readonly name: string; readonly start: number; readonly end: number }

/**
 * Check device-memory ranges: page-aligned, non-empty, below 2^52, disjoint from RAM and each other.
 * @throws KernelError EINVAL naming `deviceMemory[i]`.
 * @example parseDeviceMemory([{ start: 2 ** 46, size: '256M', name: 'gpu-bar0' }], parseRam('4G'))
 */
export function parseDeviceMemory(specs: readonly DeviceMemorySpec[] | undefined, ram: readonly PfnRange[]): DeviceMemoryRange[] {
  if (!Array.isArray(ram)) throw new KernelError(EINVAL, 'parseDeviceMemory', 'expected the RAM ranges parseRam returns', 'ram');
  if (specs === undefined) return [];
  if (!Array.isArray(specs)) throw new KernelError(EINVAL, 'Machine', 'expected an array of { start, size, name? }', 'deviceMemory');
  const out = specs.map((r: DeviceMemorySpec, i) => {
    const arg = `deviceMemory[${i}]`;
    if (typeof r !== 'object' || r === null) throw new KernelError(EINVAL, 'Machine', 'expected { start, size, name? }', arg);
    const start = parseSize(r.start, 'Machine', `${arg}.start`);
    const size = parseSize(r.size, 'Machine', `${arg}.size`);
    if (start % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0 || size === 0) throw new KernelError(EINVAL, 'Machine', `device memory must be non-empty and page-aligned (start ${start}, size ${size})`, arg);
    if (start + size > MAX_PFN_LIMIT * PAGE_SIZE) throw new KernelError(EINVAL, 'Machine', 'device memory must end at or below 2^52', arg);
    if (r.name !== undefined && (typeof r.name !== 'string' || r.name === '')) throw new KernelError(EINVAL, 'Machine', 'a name is a non-empty string', `${arg}.name`);
    if (ram.some((m) => start < m.endPfn * PAGE_SIZE && m.startPfn * PAGE_SIZE < start + size)) throw new KernelError(EINVAL, 'Machine', 'device memory overlaps RAM', arg);
    return { name: r.name ?? `mmio${i}`, start, end: start + size };
  }).sort((a, b) => a.start - b.start);
  for (let i = 1; i < out.length; i++) {
    if ((out[i] as DeviceMemoryRange).start < (out[i - 1] as DeviceMemoryRange).end) throw new KernelError(EINVAL, 'Machine', 'device-memory ranges overlap', 'deviceMemory');
  }
  return out;
}

/** A RAM range in page frames: [startPfn, endPfn). */
export interface PfnRange { readonly startPfn: number; readonly endPfn: number }

/** A zone's span and the RAM inside it. */
export interface ZoneSpan {
  readonly index: number;
  readonly name: ZoneName;
  /** Zone span [startPfn, endPfn) (may contain holes). */
  readonly startPfn: number;
  readonly endPfn: number;
  /** RAM ranges inside the zone, sorted. */
  readonly ram: readonly PfnRange[];
  /** Pages of RAM in the zone. */
  readonly presentPages: number;
}


/**
 * Normalise RAM ranges: page-aligned, sorted, non-overlapping.
 * @throws KernelError EINVAL on unaligned, empty, overlapping or too large ranges.
 * @example parseRam('16G') // [{ startPfn: 0, endPfn: 4194304 }]
 */
export function parseRam(memory: Size | readonly RamRangeSpec[]): PfnRange[] {
  const specs: RamRangeSpec[] = Array.isArray(memory) ? [...memory] : [{ start: 0, size: memory as Size }];
  if (specs.length === 0) throw new KernelError(EINVAL, 'Machine', 'at least one RAM range is needed', 'memory');
  const ranges = specs.map((r, i) => {
    const start = parseSize(r.start, 'Machine', `memory[${i}].start`);
    const size = parseSize(r.size, 'Machine', `memory[${i}].size`);
    if (start % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0 || size === 0) {
      throw new KernelError(EINVAL, 'Machine', `RAM ranges must be non-empty and page-aligned (start ${start}, size ${size})`, `memory[${i}]`);
    }
    return { startPfn: start / PAGE_SIZE, endPfn: (start + size) / PAGE_SIZE };
  }).sort((a, b) => a.startPfn - b.startPfn);
  for (let i = 1; i < ranges.length; i++) {
    if ((ranges[i] as PfnRange).startPfn < (ranges[i - 1] as PfnRange).endPfn) {
      throw new KernelError(EINVAL, 'Machine', 'RAM ranges overlap', 'memory');
    }
  }
  const last = ranges[ranges.length - 1] as PfnRange;
  if (last.endPfn > MAX_PFN_LIMIT) throw new KernelError(EINVAL, 'Machine', `RAM must end at or below 2^52 (52-bit physical addresses), got an end at 0x${(last.endPfn * PAGE_SIZE).toString(16)}`, 'memory');
  // Ranges that touch are one range, as memblock merges adjacent regions: the buddy allocator
  // then merges blocks across the seam as the kernel's does.
  const merged: PfnRange[] = [];
  for (const r of ranges) {
    const prev = merged[merged.length - 1];
    if (prev !== undefined && prev.endPfn === r.startPfn) merged[merged.length - 1] = { startPfn: prev.startPfn, endPfn: r.endPfn };
    else merged.push(r);
  }
  return merged;
}

/**
 * Cut RAM ranges into the DMA, DMA32 and Normal zones. `zoneDmaLimit` is where ZONE_DMA ends, in
 * bytes (x86: 16 MiB; arm64: 4 GiB unless the firmware says less, ZONE_DMA32 then empty).
 */
export function zoneSpans(ram: readonly PfnRange[], zoneDmaLimit = ZONE_DMA_LIMIT): ZoneSpan[] {
  if (!Array.isArray(ram)) throw new KernelError(EINVAL, 'zoneSpans', 'expected the RAM ranges parseRam returns', 'ram');
  if (!(Number.isInteger(zoneDmaLimit) && zoneDmaLimit > 0 && zoneDmaLimit <= ZONE_DMA32_LIMIT && zoneDmaLimit % PAGE_SIZE === 0)) {
    throw new KernelError(EINVAL, 'zoneSpans', `ZONE_DMA ends at a page boundary in (0, 4 GiB], got ${String(zoneDmaLimit)}`, 'zoneDmaLimit');
  }
  const maxPfn = (ram[ram.length - 1] as PfnRange).endPfn;
  const limits = [zoneDmaLimit / PAGE_SIZE, ZONE_DMA32_LIMIT / PAGE_SIZE, Math.max(maxPfn, ZONE_DMA32_LIMIT / PAGE_SIZE)];
  let lo = 0;
  return ZONE_NAMES.map((name, index) => {
    const hi = limits[index] as number;
    const inside = ram
      .map((r) => ({ startPfn: Math.max(r.startPfn, lo), endPfn: Math.min(r.endPfn, hi) }))
      .filter((r) => r.startPfn < r.endPfn);
    const span = { index, name, startPfn: lo, endPfn: hi, ram: inside, presentPages: inside.reduce((n, r) => n + r.endPfn - r.startPfn, 0) };
    lo = hi;
    return span;
  });
}
