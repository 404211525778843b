/**
 * @module iommu/pgtable-vtd
 * The Intel VT-d second-stage IO page-table format ('vtd') behind IoPgtableOps: hardware PTEs
 * (R bit 0, W bit 1, PS bit 7, SNP bit 11, address bits 12..51), 3/4/5 levels from the address
 * width, and the map/unmap rules of the generic page table Linux's intel driver uses for
 * second-stage domains. Re-exports only.
 */
export { VtdPageTable, type VtdPageTableOptions } from './pgtable-vtd/table.ts';
export { vtdGeometry, type VtdGeometry, type VtdPageTableConfig } from './pgtable-vtd/geometry.ts';
export {
  VTD_HI_ADDR_MASK, VTD_LO_ADDR_MASK, VTD_PAGE_SIZE, VTD_PTE_PS, VTD_PTE_R, VTD_PTE_SNP, VTD_PTE_W, VTD_TABLE_ENTRIES,
  vtdLevelShift, vtdLevelsForWidth, vtdPteAddr, vtdPteValue,
} from './pgtable-vtd/pte.ts';
