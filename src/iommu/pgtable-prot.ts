/**
 * @module iommu/pgtable-prot
 * IOMMU mapping permission bits (include/linux/iommu.h), with the kernel's values. A page-table leaf
 * keeps all six bits; translation checks READ and WRITE.
 */

/**
 * The device may read memory through the mapping (DMA_TO_DEVICE).
 * @example iommu_map(domain, iova, paddr, size, IOMMU_READ, GFP_KERNEL)
 */
export const IOMMU_READ = 1;
/**
 * The device may write memory through the mapping (DMA_FROM_DEVICE).
 * @example iommu_map(domain, iova, paddr, size, IOMMU_READ | IOMMU_WRITE, GFP_KERNEL) // DMA_BIDIRECTIONAL
 */
export const IOMMU_WRITE = 2;
/**
 * Cache-coherent mapping (the other bits ride along in the leaf; translation checks READ/WRITE only).
 * @example IOMMU_READ | IOMMU_CACHE // a coherent device reading
 */
export const IOMMU_CACHE = 4;
/** No instruction fetch. @example IOMMU_READ | IOMMU_NOEXEC */
export const IOMMU_NOEXEC = 8;
/** The target is MMIO (dma_map_resource). @example IOMMU_READ | IOMMU_WRITE | IOMMU_MMIO */
export const IOMMU_MMIO = 16;
/** Privileged accesses only (DMA_ATTR_PRIVILEGED). @example IOMMU_READ | IOMMU_PRIV */
export const IOMMU_PRIV = 32;

/** One past the largest prot value a leaf can hold (six bits). @example prot < IOMMU_PROT_LIMIT */
export const IOMMU_PROT_LIMIT = 64;

/** A device access, as translation sees it. @example translate(domain, iova, 64, 'write') */
export type DmaAccess = 'read' | 'write';

/**
 * The permission bit an access needs: a device read of memory needs IOMMU_READ, a write IOMMU_WRITE.
 * @example accessPerm('write') // IOMMU_WRITE
 */
export function accessPerm(access: DmaAccess): number {
  return access === 'write' ? IOMMU_WRITE : IOMMU_READ;
}

/**
 * `IOMMU_READ|IOMMU_WRITE`-style rendering of prot bits, for messages and reports.
 * @example formatProt(3) // 'IOMMU_READ|IOMMU_WRITE'
 */
export function formatProt(prot: number): string {
  const names: Array<readonly [number, string]> = [
    [IOMMU_READ, 'IOMMU_READ'], [IOMMU_WRITE, 'IOMMU_WRITE'], [IOMMU_CACHE, 'IOMMU_CACHE'],
    [IOMMU_NOEXEC, 'IOMMU_NOEXEC'], [IOMMU_MMIO, 'IOMMU_MMIO'], [IOMMU_PRIV, 'IOMMU_PRIV'],
  ];
  const parts = names.filter(([bit]) => (prot & bit) !== 0).map(([, n]) => n);
  return parts.length === 0 ? '0' : parts.join('|');
}
