/**
 * @module dma/swiotlb/audit
 * Consistency checks over a pool's state, for auditors and tests: the free-run counts, the free-slot
 * fields, the counters and the live-mapping list must all agree.
 */
import { INVALID_PHYS_ADDR, IO_TLB_SEGSIZE, IO_TLB_SIZE } from './constants.ts';
import type { SwiotlbPool } from './pool.ts';

/**
 * Every inconsistency found in `pool`, as sentences; an empty list means the pool is sound.
 * Checks: each free slot's run count is 1 + the next slot's inside the segment; free slots hold
 * no original address, room or padding; per-area and global used counts equal the allocated
 * slots; live mappings are disjoint, allocated, and add up to the used count.
 * @example expect(swiotlbAudit(pool)).toEqual([])
 */
export function swiotlbAudit(pool: SwiotlbPool): string[] {
  const problems: string[] = [];
  const { list, orig, room, pad, nslabs } = pool.slots;
  const busyPerArea = new Array<number>(pool.nareas).fill(0);
  for (let i = 0; i < nslabs; i++) {
    const l = list[i] as number;
    if (l === 0) {
      const a = Math.floor(i / pool.areaNslabs);
      busyPerArea[a] = (busyPerArea[a] as number) + 1;
      continue;
    }
    const lastInSeg = i % IO_TLB_SEGSIZE === IO_TLB_SEGSIZE - 1 || i === nslabs - 1;
    const want = 1 + (lastInSeg ? 0 : (list[i + 1] as number));
    if (l !== want) problems.push(`slot ${i}: free-run count ${l}, expected ${want}`);
    if (orig[i] !== INVALID_PHYS_ADDR || room[i] !== 0 || pad[i] !== 0) problems.push(`slot ${i}: free but holds orig/room/pad`);
  }
  let busy = 0;
  for (let a = 0; a < pool.nareas; a++) {
    const used = pool.areaState(a).used;
    busy += busyPerArea[a] as number;
    if (used !== busyPerArea[a]) problems.push(`area ${a}: used ${used}, but ${busyPerArea[a]} slots are allocated`);
  }
  if (pool.io_tlb_used !== busy) problems.push(`io_tlb_used ${pool.io_tlb_used}, but ${busy} slots are allocated`);
  if (pool.io_tlb_used_hiwater < pool.io_tlb_used) problems.push(`hiwater ${pool.io_tlb_used_hiwater} below used ${pool.io_tlb_used}`);
  let live = 0;
  let prevEnd = 0;
  for (const m of pool.liveMappings()) {
    live += m.nslots;
    if (m.firstSlot < prevEnd) problems.push(`mapping at slot ${m.firstSlot} overlaps the previous one`);
    prevEnd = m.firstSlot + m.nslots;
    for (let s = m.firstSlot; s < m.firstSlot + m.nslots; s++) if (list[s] !== 0) problems.push(`mapping at slot ${m.firstSlot}: slot ${s} is free`);
    const want = pool.start + (m.firstSlot + m.padSlots) * IO_TLB_SIZE;
    if (m.tlbAddr - (m.tlbAddr % IO_TLB_SIZE) !== want) problems.push(`mapping at slot ${m.firstSlot}: address 0x${m.tlbAddr.toString(16)} not in its first data slot`);
  }
  if (live !== busy) problems.push(`live mappings hold ${live} slots, but ${busy} are allocated`);
  return problems;
}
