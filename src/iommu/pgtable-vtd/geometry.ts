/**
 * @module iommu/pgtable-vtd/geometry
 * The shape of a VT-d second-stage page table: levels from the address width (vtdss_pt_iommu_fmt_init),
 * which levels may hold leaves (4 KiB always; 2 MiB and 1 GiB as the hardware's SSLPS field says,
 * paging_domain_compatible_second_stage), the page-size bitmap and the address limits.
 */
import { EINVAL, EOPNOTSUPP } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import { checkObject } from '../../core/args.ts';
import { VTD_PAGE_SIZE, VTD_TABLE_ENTRIES, vtdLevelShift, vtdLevelsForWidth } from './pte.ts';

/**
 * VTD_LEVEL_SIZE[L]: bytes an entry at level L covers (L = 1..5; 0 and 6 unused).
 * @example VTD_LEVEL_SIZE[2] // 2097152
 */
export const VTD_LEVEL_SIZE: Float64Array = Float64Array.from({ length: 7 }, (_, l) => 2 ** vtdLevelShift(l));
/**
 * VTD_LEVEL_INV[L] = 1 / VTD_LEVEL_SIZE[L] (exact: powers of two).
 * @example Math.floor(iova * VTD_LEVEL_INV[2]) // the 2 MiB frame of iova
 */
export const VTD_LEVEL_INV: Float64Array = Float64Array.from({ length: 7 }, (_, l) => 2 ** -vtdLevelShift(l));

const TWO32 = 4294967296;
const EPL = VTD_TABLE_ENTRIES;

/**
 * The index of `iova` in a table whose entries cover 1 / inv bytes: floor(iova / size) mod 512, by a
 * multiply instead of a division and without fmod (the technique pgtable.ts measured), and with no
 * bitwise op on a value ≥ 2^32.
 * @example vtdIndex(0x4020_0000, VTD_LEVEL_INV[2]) // 1 (the second 2 MiB entry of the 1 GiB at 0x4000_0000)
 */
export function vtdIndex(iova: number, inv: number): number {
  const q = Math.floor(iova * inv);
  return q < TWO32 ? q & (EPL - 1) : q - Math.floor(q / EPL) * EPL;
}

/**
 * How the hardware and the domain shape a VT-d page table. All optional.
 * @example new VtdPageTable({ addressWidth: 39, sslps: 1, forceSnoop: true }, alloc)
 */
export interface VtdPageTableConfig {
  /** Input (IOVA) width in bits, from the domain's AGAW: 39 → 3 levels, 48 (default) → 4, 57 → 5. */
  readonly addressWidth?: number;
  /** cap_super_page_val (SSLPS): bit 0 = 2 MiB superpages, bit 1 = 1 GiB. Default 3 (both). */
  readonly sslps?: number;
  /** The domain forces snooping (PT_FEAT_VTDSS_FORCE_COHERENCE): SNP on every leaf. Default false. */
  readonly forceSnoop?: boolean;
  /** Output (physical) width in bits, 32..52 (the format's maximum, default). */
  readonly oas?: number;
}

/**
 * The computed shape.
 * @example vtdGeometry({ addressWidth: 57 }).levels // 5
 */
export interface VtdGeometry {
  readonly addressWidth: number;
  /** 3, 4 or 5; the top table's entries are at this level. */
  readonly levels: number;
  /** leafAt[L]: a leaf may sit at level L (index 0..5). */
  readonly leafAt: readonly boolean[];
  /** The supported page sizes as a sum of powers of two. */
  readonly pgsize_bitmap: number;
  readonly forceSnoop: boolean;
  /** 2^addressWidth: the first IOVA the table cannot translate. */
  readonly iovaLimit: number;
  /** 2^oas: the first physical address a leaf cannot point to. */
  readonly physLimit: number;
}

/**
 * Check a configuration and compute the table's shape.
 * @throws KernelError EOPNOTSUPP for an address width outside 31..57 (as pt_iommu_vtdss_init);
 *   EINVAL for sslps outside 0..3 or oas outside 32..52.
 * @example vtdGeometry({ sslps: 1 }).pgsize_bitmap === 4096 + 2 ** 21 // true
 */
export function vtdGeometry(config: VtdPageTableConfig): VtdGeometry {
  checkObject(config, 'pt_iommu_vtdss_init', 'config');
  const addressWidth = config.addressWidth ?? 48;
  const levels = vtdLevelsForWidth(addressWidth);
  if (levels < 0) throw new KernelError(EOPNOTSUPP, 'pt_iommu_vtdss_init', `address width must be a whole number of bits in 31..57, got ${String(addressWidth)}`, 'addressWidth');
  const sslps = config.sslps ?? 3;
  if (!Number.isInteger(sslps) || sslps < 0 || sslps > 3) throw new KernelError(EINVAL, 'pt_iommu_vtdss_init', `sslps must be 0..3, got ${String(sslps)}`, 'sslps');
  const oas = config.oas ?? 52;
  if (!Number.isInteger(oas) || oas < 32 || oas > 52) throw new KernelError(EINVAL, 'pt_iommu_vtdss_init', `oas must be 32..52, got ${String(oas)}`, 'oas');
  const leafAt = [false, true, (sslps & 1) !== 0, (sslps & 2) !== 0, false, false];
  let pgsize_bitmap = VTD_PAGE_SIZE;
  if (leafAt[2]) pgsize_bitmap += VTD_LEVEL_SIZE[2] as number;
  if (leafAt[3]) pgsize_bitmap += VTD_LEVEL_SIZE[3] as number;
  return {
    addressWidth, levels, leafAt, pgsize_bitmap, forceSnoop: config.forceSnoop === true,
    iovaLimit: 2 ** addressWidth, physLimit: 2 ** oas,
  };
}
