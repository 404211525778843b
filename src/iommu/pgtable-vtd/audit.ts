/**
 * @module iommu/pgtable-vtd/audit
 * The VT-d page table's self-check: walks every live table from the top and checks each PTE against
 * the format (which bits may be set where, table pointers' addresses) and the bookkeeping against
 * the tree (used counts, parent links, live tables, mapped bytes).
 */
import type { VtdTables } from './tables.ts';
import {
  VTD_PTE_DEFINED_LO, VTD_PTE_PS, VTD_PTE_R, VTD_PTE_SNP, VTD_PTE_W, VTD_HI_ADDR_MASK, VTD_TABLE_ENTRIES,
  vtdLevelShift, vtdPteAddr,
} from './pte.ts';

const RW = VTD_PTE_R | VTD_PTE_W;

/**
 * What the audit reads from a page table.
 * @example auditVtdTables({ tables, levels: 4, leafAt: [false, true, true, true, false, false], forceSnoop: false })
 */
export interface VtdAuditInput {
  readonly tables: VtdTables;
  readonly levels: number;
  /** leafAt[L]: leaves may sit at level L (L = 1..5). */
  readonly leafAt: readonly boolean[];
  readonly forceSnoop: boolean;
}

/**
 * Problems found in a live VT-d page table (empty: sound). Table 0 is the top table.
 * @example expect(auditVtdTables(input)).toEqual([])
 */
export function auditVtdTables(p: VtdAuditInput): string[] {
  const problems: string[] = [];
  const a = p.tables;
  let reachable = 0;
  let bytes = 0;
  const seen = new Set<number>();
  const walk = (t: number, level: number): void => {
    reachable++;
    seen.add(t);
    if (a.level[t] !== level) problems.push(`table ${t} at level ${level} records level ${String(a.level[t])}`);
    let nonzero = 0;
    for (let i = 0; i < VTD_TABLE_ENTRIES; i++) {
      const e = t * VTD_TABLE_ENTRIES + i;
      const lo = a.lo[e] as number;
      const hi = a.hi[e] as number;
      const next = a.next[e] as number;
      if (lo === 0 && hi === 0) {
        if (next !== 0 || a.prot[e] !== 0) problems.push(`table ${t}: empty entry ${i} keeps shadow state`);
        continue;
      }
      nonzero++;
      if ((lo & ~VTD_PTE_DEFINED_LO) !== 0 || (hi & ~VTD_HI_ADDR_MASK) !== 0) problems.push(`table ${t}: entry ${i} sets bits the format does not define`);
      if ((lo & RW) === 0) problems.push(`table ${t}: entry ${i} is non-zero but has neither R nor W (not present to the hardware)`);
      const leaf = level === 1 || (lo & VTD_PTE_PS) !== 0;
      if (leaf) {
        if (next !== 0) problems.push(`table ${t}: leaf ${i} has a child table`);
        if (!p.leafAt[level]) problems.push(`table ${t}: leaf ${i} at level ${level}, where no page size is supported`);
        if (((lo & VTD_PTE_SNP) !== 0) !== p.forceSnoop) problems.push(`table ${t}: leaf ${i} SNP does not match forceSnoop`);
        bytes += 2 ** vtdLevelShift(level);
      } else {
        const c = next - 1;
        if (c < 0 || !a.isLive(c)) problems.push(`table ${t}: table pointer ${i} leads to no live table`);
        else if (a.parent[c] !== e) problems.push(`table ${c}: parent link ${String(a.parent[c])} != ${e}`);
        else if (vtdPteAddr(lo, hi) !== (a.pfn[c] as number) * 4096) problems.push(`table ${t}: pointer ${i} address != table ${c}'s page`);
        else if ((lo & (VTD_PTE_SNP | VTD_PTE_PS)) !== 0 || (lo & RW) !== RW) problems.push(`table ${t}: pointer ${i} is not R|W without PS/SNP`);
        else walk(c, level - 1);
      }
    }
    if (a.used[t] !== nonzero) problems.push(`table ${t}: used ${String(a.used[t])} != ${nonzero} entries`);
  };
  walk(0, p.levels);
  if (reachable !== a.tablePages) problems.push(`tablePages ${a.tablePages} != ${reachable} reachable tables`);
  for (let t = 0; t < a.hwm; t++) {
    if (a.isLive(t) && !seen.has(t)) problems.push(`table ${t} is live but unreachable (leaked)`);
  }
  if (bytes !== a.mappedBytes) problems.push(`mappedBytes ${a.mappedBytes} != ${bytes} mapped by leaves`);
  if (a.deferredPages < 0) problems.push(`deferredPages ${a.deferredPages} < 0`);
  return problems;
}
