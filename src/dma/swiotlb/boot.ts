/**
 * @module dma/swiotlb/boot
 * How the kernel sizes its swiotlb pool at boot (kernel/dma/swiotlb.c: setup_io_tlb_npages for the
 * `swiotlb=` parameter, swiotlb_adjust_nareas, limit_nareas, swiotlb_init_remap), with its rounding
 * and its messages:
 * - `swiotlb=<slots>[,<areas>][,force|noforce]`: slots rounded up to a multiple of 128; areas 0 → 1,
 *   otherwise rounded up to a power of two, printing `area num N.` as soon as parsed; then the slot
 *   count raised to at least 128 × areas and rounded up to a power of two, printing
 *   `SWIOTLB bounce buffer size roundup to <MB>MB` (no newline) when that changed it.
 * - Without an area count, boot takes `num_possible_cpus()` with the same rounding (and message),
 *   then limits the areas to what the slots can hold (limit_nareas: at least 128 slots each).
 * - No pool when nothing needs one (RAM within every device's reach) and `force` was not given, or
 *   when `noforce` was.
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import type { KernelLog } from '../../core/kernel-log.ts';
import { IO_TLB_SEGSIZE, IO_TLB_SIZE } from './constants.ts';
import { SWIOTLB_PR_PREFIX } from './geometry.ts';

/** The default pool: 64 MiB (IO_TLB_DEFAULT_SIZE), 32768 slots. */
export const IO_TLB_DEFAULT_SLABS = 32768;
/** IO_TLB_MIN_SLABS: boot gives up halving the pool below 1 MiB. */
export const IO_TLB_MIN_SLABS = (1 << 20) / IO_TLB_SIZE;

/** What boot decided: the pool's slots and areas and whether every mapping bounces; null: no pool. */
export interface SwiotlbBootGeometry {
  readonly nslabs: number;
  readonly nareas: number;
  readonly force: boolean;
}

/** A parsed `swiotlb=` parameter. */
export interface SwiotlbParam {
  /** Slots as given (before rounding), or undefined when only flags were given. */
  readonly slots?: number;
  /** Areas as given (before rounding), or undefined. */
  readonly areas?: number;
  readonly force: boolean;
  readonly noforce: boolean;
}

const roundupPow2 = (n: number): number => (n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n)));

/** The boot-time state the kernel keeps in default_nslabs / default_nareas. */
interface BootState { nslabs: number; nareas: number }

/**
 * swiotlb_adjust_nareas: 0 → 1, else the next power of two; prints `area num N.`; then
 * round_up_default_nslabs: at least 128 slots per area, and a power of two, printing the roundup
 * (in MiB, no newline) when that changed the slot count.
 */
function adjustNareas(st: BootState, n: number, klog: KernelLog): void {
  st.nareas = n === 0 ? 1 : roundupPow2(n);
  klog.printk('info', 'swiotlb_adjust_nareas', `${SWIOTLB_PR_PREFIX}area num ${st.nareas}.\n`);
  let changed = false;
  if (st.nslabs < IO_TLB_SEGSIZE * st.nareas) {
    st.nslabs = IO_TLB_SEGSIZE * st.nareas;
    changed = true;
  }
  if (roundupPow2(st.nslabs) !== st.nslabs) {
    st.nslabs = roundupPow2(st.nslabs);
    changed = true;
  }
  if (changed) klog.printk('info', 'swiotlb_adjust_nareas', `${SWIOTLB_PR_PREFIX}SWIOTLB bounce buffer size roundup to ${Math.floor((st.nslabs * IO_TLB_SIZE) / 2 ** 20)}MB`);
}

/** limit_nareas: no more areas than the slots fill at 128 each. */
function limitNareas(nareas: number, nslabs: number): number {
  return nslabs < nareas * IO_TLB_SEGSIZE ? Math.floor(nslabs / IO_TLB_SEGSIZE) : nareas;
}

/**
 * The text of `swiotlb=` as a regular-expression source: slots, an optional area count (decimal or
 * 0x hex), then force or noforce. One source for the parser and the machine-file schema.
 */
export const SWIOTLB_PARAM_SYNTAX = '(?:(0x[0-9a-fA-F]+|\\d+)(?:,(0x[0-9a-fA-F]+|\\d+))?,?)?(force|noforce)?';
const SWIOTLB_PARAM_RE = new RegExp(`^${SWIOTLB_PARAM_SYNTAX}$`, 'i');

/**
 * Parse `swiotlb=<slots>[,<areas>][,force|noforce]` as setup_io_tlb_npages reads it: a number
 * (decimal, or 0x hex), then an optional second number, then the flag.
 * @throws KernelError EINVAL naming `swiotlb` for text the kernel would not read.
 * @example parseSwiotlbParam('2048,4,force') // { slots: 2048, areas: 4, force: true, noforce: false }
 */
export function parseSwiotlbParam(text: string): SwiotlbParam {
  if (typeof text !== 'string') throw new KernelError(EINVAL, 'setup_io_tlb_npages', `expected the swiotlb= text, got ${typeof text}`, 'swiotlb');
  const m = SWIOTLB_PARAM_RE.exec(text.trim());
  if (m === null || text.trim() === '') {
    throw new KernelError(EINVAL, 'setup_io_tlb_npages', `cannot read swiotlb=${text} (swiotlb=<slots>[,<areas>][,force|noforce])`, 'swiotlb');
  }
  const num = (s: string | undefined): number | undefined => (s === undefined ? undefined : Number(s));
  const slots = num(m[1]);
  const areas = num(m[2]);
  return {
    ...(slots === undefined ? {} : { slots }),
    ...(areas === undefined ? {} : { areas }),
    force: m[3]?.toLowerCase() === 'force',
    noforce: m[3]?.toLowerCase() === 'noforce',
  };
}

/**
 * The pool boot would set up.
 * @param param the `swiotlb=` parameter, or null for none; `sizeBytes` instead gives the pool size
 *   directly (a machine option, not a kernel parameter: a whole number of 256 KiB segments).
 * @param cpus num_possible_cpus().
 * @param needed the platform is addressing-limited (RAM beyond some device's reach), so x86 sets
 *   up a pool (pci_swiotlb_detect).
 * @example swiotlbBootGeometry({ param: parseSwiotlbParam('100,4'), cpus: 2, needed: true, klog }) // { nslabs: 512, nareas: 4, force: false }
 */
export function swiotlbBootGeometry(opts: {
  readonly param?: SwiotlbParam | null;
  readonly sizeBytes?: number;
  readonly areas?: number;
  readonly force?: boolean;
  readonly cpus: number;
  readonly needed: boolean;
  readonly klog: KernelLog;
}): SwiotlbBootGeometry | null {
  const { param = null, cpus, klog } = opts;
  const st: BootState = { nslabs: IO_TLB_DEFAULT_SLABS, nareas: 0 };
  let force = opts.force === true;
  // The size first (the parameter's slot count, or the size option as swiotlb_adjust_size takes
  // it), each rounded up to whole 128-slot segments.
  const slots = param?.slots ?? (opts.sizeBytes === undefined ? undefined : Math.ceil(opts.sizeBytes / IO_TLB_SIZE));
  if (slots !== undefined) st.nslabs = Math.ceil(slots / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
  const areas = param?.areas ?? opts.areas;
  if (areas !== undefined) adjustNareas(st, areas, klog);
  if (param?.force === true) force = true;
  if (param?.noforce === true) return null;
  if (!opts.needed && !force) return null;
  // swiotlb_init_remap: the CPU count when nothing set the areas, then as many as the slots fill.
  if (st.nareas === 0) adjustNareas(st, cpus, klog);
  return { nslabs: st.nslabs, nareas: Math.max(1, limitNareas(st.nareas, st.nslabs)), force };
}

/**
 * swiotlb_init_remap's placement: `alloc` (memblock below 4 GiB) the pool, halving it in whole
 * segments (and its areas with it, limit_nareas) after each failure down to IO_TLB_MIN_SLABS, with
 * the kernel's messages; null when even that fails.
 * @example placeSwiotlb(geo, (bytes) => mm.memblockAllocLow(bytes, 2 ** 32, 'swiotlb'), klog)
 */
export function placeSwiotlb(geo: SwiotlbBootGeometry, alloc: (bytes: number) => number, klog: KernelLog): { start: number; nslabs: number; nareas: number } | null {
  let { nslabs, nareas } = geo;
  for (;;) {
    const start = alloc(nslabs * IO_TLB_SIZE);
    if (start >= 0) {
      if (nslabs !== geo.nslabs) klog.printk('info', 'swiotlb_init_remap', `${SWIOTLB_PR_PREFIX}SWIOTLB bounce buffer size adjusted ${geo.nslabs} -> ${nslabs} slabs`);
      return { start, nslabs, nareas };
    }
    klog.printk('warn', 'swiotlb_memblock_alloc', `${SWIOTLB_PR_PREFIX}swiotlb_memblock_alloc: Failed to allocate ${nslabs * IO_TLB_SIZE} bytes tlb structure\n`);
    if (nslabs <= IO_TLB_MIN_SLABS) return null;
    nslabs = Math.ceil(nslabs / 2 / IO_TLB_SEGSIZE) * IO_TLB_SEGSIZE;
    nareas = Math.max(1, limitNareas(nareas, nslabs));
  }
}
