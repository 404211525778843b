/**
 * @module mm/gfp
 * GFP flags with the kernel's bit values (v6.x layout) and the zone choice they imply.
 */
import { checkInt } from '../core/args.ts';

export const __GFP_DMA = 0x01;
export const __GFP_HIGHMEM = 0x02;
export const __GFP_DMA32 = 0x04;
export const __GFP_MOVABLE = 0x08;
export const __GFP_HIGH = 0x20;
export const __GFP_IO = 0x40;
export const __GFP_FS = 0x80;
export const __GFP_ZERO = 0x100;
export const __GFP_DIRECT_RECLAIM = 0x400;
export const __GFP_KSWAPD_RECLAIM = 0x800;
export const __GFP_NOWARN = 0x2000;
export const __GFP_RETRY_MAYFAIL = 0x4000;
export const __GFP_NOFAIL = 0x8000;
export const __GFP_NORETRY = 0x10000;
export const __GFP_COMP = 0x40000;

export const __GFP_RECLAIM = __GFP_DIRECT_RECLAIM | __GFP_KSWAPD_RECLAIM;
/** 0xcc0, the most common mode in allocation-failure reports. */
export const GFP_KERNEL = __GFP_RECLAIM | __GFP_IO | __GFP_FS;
export const GFP_ATOMIC = __GFP_HIGH | __GFP_KSWAPD_RECLAIM;
export const GFP_NOWAIT = __GFP_KSWAPD_RECLAIM;
export const GFP_NOIO = __GFP_RECLAIM;
export const GFP_DMA = __GFP_DMA;
export const GFP_DMA32 = __GFP_DMA32;

/** The zones, lowest first. */
export const ZONE_NAMES = ['DMA', 'DMA32', 'Normal'] as const;
export type ZoneName = (typeof ZONE_NAMES)[number];
export const ZONE_DMA = 0;
export const ZONE_DMA32 = 1;
export const ZONE_NORMAL = 2;

/** The highest zone an allocation with `gfp` may use (gfp_zone()); it falls back to lower ones. */
export function gfpZone(gfp: number): number {
  if (gfp & __GFP_DMA) return ZONE_DMA;
  if (gfp & __GFP_DMA32) return ZONE_DMA32;
  return ZONE_NORMAL;
}

const NAMED: ReadonlyArray<readonly [number, string]> = [
  [GFP_KERNEL, 'GFP_KERNEL'], [GFP_ATOMIC, 'GFP_ATOMIC'], [GFP_NOWAIT, 'GFP_NOWAIT'],
  [__GFP_DMA, '__GFP_DMA'], [__GFP_DMA32, '__GFP_DMA32'], [__GFP_ZERO, '__GFP_ZERO'],
  [__GFP_NOWARN, '__GFP_NOWARN'], [__GFP_RETRY_MAYFAIL, '__GFP_RETRY_MAYFAIL'], [__GFP_NOFAIL, '__GFP_NOFAIL'],
  [__GFP_NORETRY, '__GFP_NORETRY'], [__GFP_COMP, '__GFP_COMP'], [__GFP_HIGHMEM, '__GFP_HIGHMEM'],
  [__GFP_MOVABLE, '__GFP_MOVABLE'],
];

/** The `%pGg` rendering of a mode, e.g. `GFP_KERNEL|__GFP_NOWARN`. */
export function formatGfp(gfp: number): string {
  checkInt(gfp, 'formatGfp', 'gfp', 0, 0xffffffff);
  const parts: string[] = [];
  let rest = gfp;
  for (const [bits, name] of NAMED) {
    if ((rest & bits) === bits && bits !== 0) { parts.push(name); rest &= ~bits; }
  }
  if (rest !== 0) parts.push(`0x${rest.toString(16)}`);
  return parts.length === 0 ? '0' : parts.join('|');
}
