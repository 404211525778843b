/**
 * @module dma/debug/audit
 * What an auditor reads from dma-debug: the live entries as plain records (so "dma-debug entries
 * equal live mappings" can be checked from outside) and a self-consistency check of the hash
 * lists, the pool counts and the cacheline table.
 */
import { DMA_TO_DEVICE } from '../api/direction.ts';
import { ACTIVE_CACHELINE_MAX_OVERLAP, dmaDebugTypeName, HASH_SIZE, MAP_ERR_CHECKED, MAP_ERR_NOT_CHECKED } from './constants.ts';
import type { DebugDevice } from './device.ts';
import type { DebugState } from './state.ts';
import { hashBucket } from './u64.ts';
import { nextUsedBucket } from './entries.ts';

/** One live `dma_debug_entry`. */
export interface DmaDebugEntryInfo {
  /** Pool slot (slots are reused newest first). */
  readonly slot: number;
  readonly dev: DebugDevice;
  /** `phy`, `scatter-gather`, `coherent` or `noncoherent`. */
  readonly type: string;
  readonly dev_addr: number;
  readonly size: number;
  readonly direction: number;
  readonly sg_call_ents: number;
  readonly sg_mapped_ents: number;
  /** Physical address of the first byte. */
  readonly paddr: number;
  readonly map_err_type: 'not applicable' | 'not checked' | 'checked';
  /** Mapped with DMA_ATTR_DEBUGGING_IGNORE_CACHELINES or DMA_ATTR_REQUIRE_COHERENT. */
  readonly cacheClean: boolean;
  /** Hash bucket, `(dev_addr >> 13) & 0x3fff`. */
  readonly bucket: number;
}

/** @internal The record of a live slot. */
export function entryInfo(st: DebugState, s: number): DmaDebugEntryInfo {
  const t = st.table;
  const m = t.mapErr[s];
  return {
    slot: s,
    dev: t.dev[s] as DebugDevice,
    type: dmaDebugTypeName(t.type[s] as number),
    dev_addr: t.devAddr[s] as number,
    size: t.size[s] as number,
    direction: t.dir[s] as number,
    sg_call_ents: t.sgCallEnts[s] as number,
    sg_mapped_ents: t.sgMappedEnts[s] as number,
    paddr: t.paddr[s] as number,
    map_err_type: m === MAP_ERR_NOT_CHECKED ? 'not checked' : m === MAP_ERR_CHECKED ? 'checked' : 'not applicable',
    cacheClean: t.clean[s] === 1,
    bucket: hashBucket(t.devAddr[s] as number),
  };
}

/**
 * @internal Every inconsistency in the state, as sentences: list links, bucket placement, pool
 * counts, and for each held cacheline an overlap count in range and no larger than its live
 * claimants allow.
 */
export function auditState(st: DebugState): string[] {
  const problems: string[] = [];
  const t = st.table;
  const seen = new Set<number>();
  const claimants = new Map<number, number>();
  // Only buckets whose head or tail is set, found by native compares of empty runs (nextUsedBucket):
  // the walk runs on every audit of a failure sweep. A cursor per array keeps it linear.
  const { head, tail } = t;
  let nextHead = nextUsedBucket(head, 0);
  let nextTail = nextUsedBucket(tail, 0);
  for (let b = Math.min(nextHead, nextTail); b < HASH_SIZE; b = Math.min(nextHead, nextTail)) {
    if (nextHead === b) nextHead = nextUsedBucket(head, b + 1);
    if (nextTail === b) nextTail = nextUsedBucket(tail, b + 1);
    let prev = -1;
    for (let s = head[b] as number; s !== -1; s = t.next[s] as number) {
      if (seen.has(s)) {
        problems.push(`bucket ${b}: slot ${s} listed twice`);
        break;
      }
      seen.add(s);
      if (t.prev[s] !== prev) problems.push(`bucket ${b}: slot ${s} has prev ${t.prev[s]}, expected ${prev}`);
      if (t.live[s] !== 1) problems.push(`bucket ${b}: slot ${s} is listed but not live`);
      if (hashBucket(t.devAddr[s] as number) !== b) problems.push(`slot ${s} is in bucket ${b}, its address hashes elsewhere`);
      if (t.dir[s] !== DMA_TO_DEVICE) {
        const cln = st.cacheline(t.paddr[s] as number);
        claimants.set(cln, (claimants.get(cln) ?? 0) + 1);
      }
      prev = s;
    }
    if (tail[b] !== prev) problems.push(`bucket ${b}: tail ${t.tail[b]}, expected ${prev}`);
  }
  if (seen.size !== t.liveCount) problems.push(`${seen.size} entries listed, liveCount ${t.liveCount}`);
  if (t.numFree + t.liveCount !== t.total) problems.push(`free ${t.numFree} + live ${t.liveCount} != total ${t.total}`);
  if (t.minFree > t.numFree) problems.push(`min_free_entries ${t.minFree} above num_free_entries ${t.numFree}`);
  for (const { cln, overlap } of st.lines.lines()) {
    if (overlap < 0 || overlap > ACTIVE_CACHELINE_MAX_OVERLAP) problems.push(`cacheline ${cln}: overlap ${overlap} out of range`);
    const live = claimants.get(cln) ?? 0;
    if (overlap + 1 > live) problems.push(`cacheline ${cln}: held with overlap ${overlap} but ${live} live claimants`);
  }
  return problems;
}
