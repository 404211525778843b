/**
 * @module test/dma/swiotlb-helpers
 * Shared set-up for the swiotlb suites: a machine, a pool over part of its RAM, byte patterns.
 */
import { expect } from 'vitest';
import { Machine } from '../../../src/sim/machine.ts';
import { SwiotlbPool, type SwiotlbPoolOptions } from '../../../src/dma/swiotlb/index.ts';

export interface Rig {
  readonly m: Machine;
  readonly pool: SwiotlbPool;
  /** kernel messages printed by function `fn`. */
  msgs(fn?: string): string[];
  /** Bytes at a physical address. */
  read(phys: number, len: number): Uint8Array;
  write(phys: number, bytes: Uint8Array): void;
}

/** A machine (256 MiB unless told) and a pool at `start` (64 MiB at 0x4000000 unless told). */
export function rig(opts: Partial<Pick<SwiotlbPoolOptions, 'start' | 'size' | 'areas' | 'verbose'>> & { memory?: string } = {}): Rig {
  const m = new Machine({ memory: opts.memory ?? '256M' });
  m.klog.clear(); // only what swiotlb prints
  const pool = new SwiotlbPool({
    start: opts.start ?? 0x4000000,
    size: opts.size ?? '64M',
    areas: opts.areas ?? 1,
    memory: m.mm,
    klog: m.klog,
    faults: m.faults,
    verbose: opts.verbose ?? false,
  });
  return {
    m,
    pool,
    msgs: (fn) => m.klog.messages.filter((x) => fn === undefined || x.fn === fn).map((x) => x.message),
    read: (phys, len) => m.mm.readPhys(phys, len),
    write: (phys, bytes) => m.mm.writePhys(phys, bytes),
  };
}

/** `len` bytes counting up from `seed` (mod 251, so runs never line up with powers of two). */
export function pattern(len: number, seed = 1): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (seed + i) % 251;
  return out;
}

/** A copy of the pool's slot arrays and counters, for before/after comparisons. */
export function snapshot(pool: SwiotlbPool): unknown {
  const areas = [];
  for (let a = 0; a < pool.nareas; a++) areas.push(pool.areaState(a));
  return {
    list: Array.from(pool.slots.list), orig: Array.from(pool.slots.orig), room: Array.from(pool.slots.room),
    pad: Array.from(pool.slots.pad), used: pool.io_tlb_used, hiwater: pool.io_tlb_used_hiwater, areas,
    live: pool.liveMappings(),
  };
}

/**
 * Assert two byte arrays are equal. vitest's deep equality walks typed arrays element by element
 * (about 1 µs a byte), too slow inside properties: compare natively, and show only the first
 * differing 16 bytes.
 */
export function expectBytes(actual: Uint8Array, expected: Uint8Array): void {
  expect(actual.length).toBe(expected.length);
  if (Buffer.compare(actual, expected) === 0) return;
  let i = 0;
  while (actual[i] === expected[i]) i++;
  expect({ at: i, bytes: Array.from(actual.subarray(i, i + 16)) }).toEqual({ at: i, bytes: Array.from(expected.subarray(i, i + 16)) });
}
