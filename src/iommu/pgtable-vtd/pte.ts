/**
 * @module iommu/pgtable-vtd/pte
 * The Intel VT-d second-stage paging entry (VT-d spec §3.7 and §9.8; in Linux the VTDSS_FMT_* bits of
 * drivers/iommu/generic_pt/fmt/vtdss.h, and before that the DMA_PTE_* bits of
 * drivers/iommu/intel/iommu.h): one 64-bit word per entry, 512 entries per 4 KiB table.
 *
 * | bits   | meaning                                                                    |
 * |--------|----------------------------------------------------------------------------|
 * | 0      | R: read allowed (an entry is present when R or W is set: no present bit)   |
 * | 1      | W: write allowed                                                           |
 * | 7      | PS: this 2 MiB / 1 GiB entry is a superpage leaf, not a table pointer       |
 * | 11     | SNP: snoop (set on leaves only when the domain forces coherency)           |
 * | 12..51 | the page's (or the next table's) physical address, bits 12..51             |
 *
 * Levels use the intel driver's numbering (pfn_to_dma_pte): level 1 holds 4 KiB PTEs, level 2
 * 2 MiB PDEs, level 3 1 GiB PDPTEs, level 4 PML4Es, level 5 PML5Es. An entry at level L covers
 * 2^(9L + 3) bytes. A table pointer carries R|W and the table's address (vtdss_pt_install_table);
 * a leaf carries R/W from the prot, SNP when forced, and PS above level 1 (vtdss_pt_install_leaf_entry).
 *
 * A PTE is kept as two 32-bit halves: `lo` (bits 0..31) and `hi` (bits 32..63).
 */

/** R, bit 0. @example (lo & VTD_PTE_R) !== 0 // readable */
export const VTD_PTE_R = 0x1;
/** W, bit 1. @example (lo & VTD_PTE_W) !== 0 // writable */
export const VTD_PTE_W = 0x2;
/** PS, bit 7: a superpage leaf at level 2 or 3. @example (lo & VTD_PTE_PS) !== 0 */
export const VTD_PTE_PS = 0x80;
/** SNP, bit 11. @example (lo & VTD_PTE_SNP) !== 0 // snooped */
export const VTD_PTE_SNP = 0x800;
/** Address bits 12..31, where they sit in the low half. @example (lo & VTD_LO_ADDR_MASK) >>> 0 */
export const VTD_LO_ADDR_MASK = 0xfffff000;
/** Address bits 32..51, where they sit in the high half (its bits 0..19). @example hi & VTD_HI_ADDR_MASK */
export const VTD_HI_ADDR_MASK = 0x000fffff;
/** Entries in one table page. @example VTD_TABLE_ENTRIES * 8 === 4096 */
export const VTD_TABLE_ENTRIES = 512;
/** Bytes in one table page (and in the smallest page). @example VTD_PAGE_SIZE // 4096 */
export const VTD_PAGE_SIZE = 4096;

/** Every bit the format defines for an entry Linux writes (anything else set is a corruption). */
export const VTD_PTE_DEFINED_LO = (VTD_PTE_R | VTD_PTE_W | VTD_PTE_PS | VTD_PTE_SNP | VTD_LO_ADDR_MASK) >>> 0;

const TWO32 = 4294967296;

/**
 * log2 of the bytes an entry at `level` covers: 12, 21, 30, 39, 48 for levels 1..5.
 * @example vtdLevelShift(2) // 21
 */
export function vtdLevelShift(level: number): number {
  return 9 * level + 3;
}

/**
 * Levels for an address width, as vtdss_pt_iommu_fmt_init picks them (and the old
 * width_to_agaw / agaw_to_level): ≤ 39 bits → 3, ≤ 48 → 4, ≤ 57 → 5; -1 outside 31..57.
 * @example vtdLevelsForWidth(39) // 3; vtdLevelsForWidth(48) // 4; vtdLevelsForWidth(57) // 5
 */
export function vtdLevelsForWidth(addressWidth: number): number {
  if (!Number.isInteger(addressWidth) || addressWidth <= 30 || addressWidth > 57) return -1;
  if (addressWidth > 48) return 5;
  if (addressWidth > 39) return 4;
  return 3;
}

/**
 * The physical address held in bits 12..51 of a PTE given as halves.
 * @example vtdPteAddr(0x5003, 0x1) // 0x1_0000_5000
 */
export function vtdPteAddr(lo: number, hi: number): number {
  return (hi & VTD_HI_ADDR_MASK) * TWO32 + ((lo & VTD_LO_ADDR_MASK) >>> 0);
}

/**
 * The high half of a PTE pointing at `phys` (a multiple of 4096 below 2^52).
 * @example vtdHiOf(0x1_0000_5000) // 1
 */
export function vtdHiOf(phys: number): number {
  return Math.floor(phys / TWO32);
}

/**
 * The low half of a PTE pointing at `phys` with attribute bits `attrs`, as an unsigned 32-bit value.
 * @example vtdLoOf(0x1_0000_5000, VTD_PTE_R | VTD_PTE_W) // 0x5003
 */
export function vtdLoOf(phys: number, attrs: number): number {
  return ((phys - Math.floor(phys / TWO32) * TWO32) | attrs) >>> 0;
}

/**
 * The whole 64-bit PTE from its halves (for tests and dumps; BigInt stays off the hot paths).
 * @example vtdPteValue(0x5083, 0) === 0x5083n // true
 */
export function vtdPteValue(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
