/**
 * @module dma/swiotlb/geometry
 * Boot-time pool geometry: the `swiotlb=<slots>[,<areas>][,force|noforce]` parameter, the area
 * count from the CPU count, the rounding of both, and the messages the kernel prints on the way.
 */
import { checkInt } from '../../core/args.ts';
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import type { KernelLog } from '../../core/kernel-log.ts';
import { IO_TLB_DEFAULT_SIZE, IO_TLB_SEGSIZE, IO_TLB_SHIFT, IO_TLB_SIZE } from './constants.ts';

/**
 * `pr_fmt` of kernel/dma/swiotlb.c: every pr_info there starts with it.
 * @example SWIOTLB_PR_PREFIX + 'area num 4.\n'
 */
export const SWIOTLB_PR_PREFIX = 'software IO TLB: ';

/**
 * Inputs of the boot decision.
 * @example { param: '65536,4,force', cpus: machine.cpus, klog: machine.klog }
 */
export interface SwiotlbBootOptions {
  /** What follows `swiotlb=` on the command line; absent = no parameter. */
  readonly param?: string;
  /** `num_possible_cpus()`: the default area count (rounded up to a power of two). */
  readonly cpus: number;
  /** Is the platform addressing-limited (some device cannot reach all RAM)? Default true. */
  readonly addressingLimited?: boolean;
  /** Where the boot messages go (`area num N.`, `... roundup to <MB>MB`). */
  readonly klog?: KernelLog;
}

/**
 * What boot decided.
 * @example { enabled: true, nslabs: 512, nareas: 4, size: 1048576, force: false, noforce: false }
 */
export interface SwiotlbBootGeometry {
  /** Was a pool allocated? False without addressing limits unless `force`, or with `noforce`. */
  readonly enabled: boolean;
  /** Slots in the pool (0 when not enabled). */
  readonly nslabs: number;
  /** Areas (after `limit_nareas`); the parsed or CPU-derived count, 1 at least. */
  readonly nareas: number;
  /** Pool bytes: nslabs × 2048. */
  readonly size: number;
  /** `swiotlb=...,force`: every mapping bounces. */
  readonly force: boolean;
  /** `swiotlb=...,noforce`: no pool at all. */
  readonly noforce: boolean;
}

/** `simple_strtoul(s + pos, &end, 0)`: 0x-prefixed hex, 0-prefixed octal, else decimal. */
function strtoul(s: string, pos: number): { value: number; end: number } {
  let base = 10;
  let i = pos;
  if (s[i] === '0') {
    if ((s[i + 1] === 'x' || s[i + 1] === 'X') && /[0-9a-fA-F]/.test(s[i + 2] ?? '')) {
      base = 16;
      i += 2;
    } else {
      base = 8;
    }
  }
  let value = 0;
  for (; i < s.length; i++) {
    const d = parseInt(s[i] as string, 16);
    if (Number.isNaN(d) || d >= base) break;
    value = value * base + d;
    if (value > 2 ** 32) throw new KernelError(EINVAL, 'setup_io_tlb_npages', `number too large in swiotlb=${s}`, 'param');
  }
  return { value, end: i };
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9';

function roundupPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * Decide the boot pool's geometry the way `setup_io_tlb_npages` and `swiotlb_init_remap` do:
 * slots rounded up to 128; areas 0 → 1, else rounded up to a power of two, printing
 * `area num N.`; then slots raised to 128 × areas and rounded up to a power of two, printing
 * `SWIOTLB bounce buffer size roundup to <MB>MB` (no newline) if that changed them. Without an
 * area count the CPU count is used, only once the pool is known to exist.
 * @throws KernelError EINVAL when `cpus` is not a whole number ≥ 1, or a number in `param` is absurd.
 * @example swiotlbBootGeometry({ param: '100,4', cpus: 2 }) // { nslabs: 512, nareas: 4, ... }
 */
export function swiotlbBootGeometry(opts: SwiotlbBootOptions): SwiotlbBootGeometry {
  const fn = 'swiotlbBootGeometry';
  const cpus = checkInt(opts.cpus, fn, 'cpus', 1, 4096);
  const log = (msg: string): void => opts.klog?.printk('info', 'swiotlb_adjust_nareas', SWIOTLB_PR_PREFIX + msg);
  let nslabs = IO_TLB_DEFAULT_SIZE / IO_TLB_SIZE;
  let nareas = 0;
  const adjustNareas = (n: number): void => {
    nareas = n === 0 ? 1 : roundupPow2(n);
    log(`area num ${nareas}.\n`);
    // round_up_default_nslabs()
    let changed = true;
    if (nslabs < IO_TLB_SEGSIZE * nareas) nslabs = IO_TLB_SEGSIZE * nareas;
    else if (roundupPow2(nslabs) === nslabs) changed = false;
    if (changed) {
      nslabs = roundupPow2(nslabs);
      log(`SWIOTLB bounce buffer size roundup to ${Math.floor((nslabs * IO_TLB_SIZE) / 2 ** 20)}MB`);
    }
  };
  let force = false;
  let noforce = false;
  if (opts.param !== undefined) {
    const s = opts.param;
    let pos = 0;
    if (isDigit(s[pos])) {
      const r = strtoul(s, pos);
      nslabs = Math.ceil(r.value / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
      pos = r.end;
    }
    if (s[pos] === ',') pos++;
    if (isDigit(s[pos])) {
      const r = strtoul(s, pos);
      pos = r.end;
      adjustNareas(r.value);
    }
    if (s[pos] === ',') pos++;
    const rest = s.slice(pos);
    if (rest === 'force') force = true;
    else if (rest === 'noforce') noforce = true;
  }
  if ((!(opts.addressingLimited ?? true) && !force) || noforce) {
    return { enabled: false, nslabs: 0, nareas: Math.max(nareas, 1), size: 0, force, noforce };
  }
  if (nareas === 0) adjustNareas(cpus);
  // limit_nareas(): never more areas than whole segments (cannot trigger after the rounding above).
  if (nslabs < nareas * IO_TLB_SEGSIZE) nareas = nslabs / IO_TLB_SEGSIZE;
  return { enabled: true, nslabs, nareas, size: nslabs * 2 ** IO_TLB_SHIFT, force, noforce };
}
