/**
 * @module sim/replay/write
 * A machine's DMA events in the kernel's trace format: what `cat /sys/kernel/tracing/trace` prints
 * on a 6.18 kernel with `dma:*`, `swiotlb:swiotlb_bounced` and `iommu:map` / `unmap` /
 * `io_page_fault` enabled (booted with
 * no_hash_pointers, so CPU pointers print as themselves). Only dma_map_sg cuts its arrays at 128
 * entries, as the kernel's does. A simulation's trace can be replayed and
 * checked like a real one (`dmasim run --ftrace out.txt`, then `dmasim replay out.txt`).
 */
import { EINVAL } from '../../core/errno.ts';
import { KernelError } from '../../core/errors.ts';
import type { TraceEvent } from '../../core/trace.ts';
import { formatGfp } from '../../mm/gfp.ts';
import type { DmaDirection, FtraceEvent } from './events.ts';
import { formatFtraceLine } from './format.ts';

/** The header `cat trace` prints (without the buffer statistics). */
const HEADER = [
  '# tracer: nop',
  '#',
  '#                                _-----=> irqs-off/BH-disabled',
  '#                               / _----=> need-resched',
  '#                              | / _---=> hardirq/softirq',
  '#                              || / _--=> preempt-depth',
  '#                              ||| / _-=> migrate-disable',
  '#                              |||| /     delay',
  '#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION',
  '#              | |         |   |||||     |         |',
];

const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
const nums = (v: unknown): number[] => (Array.isArray(v) ? (v as number[]) : []);
const ptr = (v: unknown): string => num(v).toString(16).padStart(16, '0');
// A mask past 2^53 is not a whole JS number: the 64-bit mask (all ones) prints as the kernel's.
const maskOf = (v: unknown): number => (num(v) >= 2 ** 53 ? -1 : num(v));
const gfp = (v: unknown): string => (num(v) === 0 ? 'none' : formatGfp(num(v)));

/**
 * The kernel trace event of one of dmasim's trace events, or null for events the kernel does not
 * trace in the dma/swiotlb/iommu systems (IOTLB flushes, device faults without an IOMMU, WARNs,
 * injections, the IOVA API).
 * @example const ev = toFtraceEvent(machine.trace.events[0]);
 */
export function toFtraceEvent(e: TraceEvent, line = 0): FtraceEvent | null {
  if (typeof e !== 'object' || e === null || typeof e.name !== 'string' || typeof e.actor !== 'string' || typeof e.t !== 'number' || !(e.t >= 0)) {
    throw new KernelError(EINVAL, 'toFtraceEvent', 'expected a trace event (machine.trace.events)', 'e');
  }
  if (!Number.isSafeInteger(line) || line < 0) throw new KernelError(EINVAL, 'toFtraceEvent', `expected a line number, got ${String(line)}`, 'line');
  const a = typeof e.args === 'object' && e.args !== null ? e.args : {};
  const head = { line, task: 'dmasim', pid: 1, cpu: typeof e.cpu === 'number' ? e.cpu : 0, latency: '.....', timestamp: e.t / 1e9 };
  const dma = { ...head, system: 'dma' as const, device: e.actor, dir: num(a['dir']) as DmaDirection };
  // A translation fault the IOMMU reported (report_iommu_fault): flags IOMMU_FAULT_READ 0, WRITE 1.
  if (e.kind === 'fault') {
    if (a['iommu'] !== true) return null;
    return { ...head, system: 'iommu', event: 'io_page_fault', device: e.actor, driver: typeof a['driver'] === 'string' ? a['driver'] : '', iova: num(a['iova']), flags: a['access'] === 'write' ? 1 : 0 };
  }
  switch (e.name) {
    case 'dma_map_phys':
      return { ...dma, event: 'dma_map_phys', dma_addr: num(a['addr']), size: num(a['size']), phys_addr: num(a['phys']), attrs: num(a['attrs']) };
    case 'dma_unmap_phys':
      return { ...dma, event: 'dma_unmap_phys', addr: num(a['addr']), size: num(a['size']), attrs: num(a['attrs']) };
    case 'dma_map_sg': {
      const nents = num(a['nents']);
      const ents = num(a['ents']);
      return {
        ...dma, event: 'dma_map_sg', full_nents: nents, full_ents: ents, nents: Math.min(nents, 128), ents: Math.min(ents, 128), truncated: nents > 128 || ents > 128,
        phys_addrs: nums(a['phys_addrs']).slice(0, 128), dma_addrs: nums(a['dma_addrs']).slice(0, 128), lengths: nums(a['lengths']).slice(0, 128), attrs: num(a['attrs']),
      };
    }
    case 'dma_map_sg failed':
      return { ...dma, event: 'dma_map_sg_err', phys_addrs: nums(a['phys_addrs']), err: num(a['ret']), attrs: num(a['attrs']) };
    case 'dma_unmap_sg':
      return { ...dma, event: 'dma_unmap_sg', addrs: nums(a['phys_addrs']), attrs: num(a['attrs']) };
    case 'dma_sync_single_for_cpu':
    case 'dma_sync_single_for_device':
      return { ...dma, event: e.name, dma_addr: num(a['addr']), size: num(a['size']) };
    case 'dma_sync_sg_for_cpu':
    case 'dma_sync_sg_for_device':
      return { ...dma, event: e.name, dma_addrs: nums(a['dma_addrs']), lengths: nums(a['lengths']) };
    case 'dma_alloc_attrs':
      return { ...dma, dir: 0, event: 'dma_alloc', virt_addr: ptr(a['virt']), dma_addr: num(a['handle']), size: num(a['size']), flags: gfp(a['gfp']), attrs: num(a['attrs']) };
    case 'dma_free_attrs':
      return { ...dma, dir: 0, event: 'dma_free', virt_addr: ptr(a['virt']), dma_addr: num(a['handle']), size: num(a['size']), attrs: num(a['attrs']) };
    case 'dma_alloc_pages':
      return { ...dma, event: 'dma_alloc_pages', virt_addr: ptr(a['virt']), dma_addr: num(a['handle']), size: num(a['size']), flags: gfp(a['gfp']), attrs: 0 };
    case 'dma_free_pages':
      return { ...dma, event: 'dma_free_pages', virt_addr: ptr(a['virt']), dma_addr: num(a['handle']), size: num(a['size']), attrs: 0 };
    case 'dma_alloc_sgt':
      return { ...dma, event: 'dma_alloc_sgt', phys_addrs: nums(a['phys_addrs']), dma_addr: num(a['handle']), size: num(a['size']), flags: gfp(a['gfp']), attrs: num(a['attrs']) };
    case 'dma_alloc_sgt_err':
      return { ...dma, event: 'dma_alloc_sgt_err', virt_addr: ptr(0), dma_addr: 0, size: num(a['size']), flags: gfp(a['gfp']), attrs: num(a['attrs']) };
    case 'dma_free_sgt':
      return { ...dma, event: 'dma_free_sgt', phys_addrs: nums(a['phys_addrs']), dma_addr: num(a['handle']), size: num(a['size']) };
    case 'swiotlb_bounced':
      return { ...head, system: 'swiotlb', event: 'swiotlb_bounced', dev_name: e.actor, dma_mask: maskOf(a['dma_mask']), dev_addr: num(a['dev_addr']), size: num(a['size']), force: a['force'] === 'FORCE' };
    case 'iommu_map':
      return { ...head, system: 'iommu', event: 'map', iova: num(a['iova']), paddr: num(a['paddr']), size: num(a['size']) };
    case 'iommu_unmap':
      return { ...head, system: 'iommu', event: 'unmap', iova: num(a['iova']), size: num(a['size']), unmapped_size: num(a['unmapped_size']) };
    default:
      return null;
  }
}

/**
 * A machine's DMA trace as the kernel's trace file prints it (the machine needs `trace: true`).
 * When the bounded trace dropped its oldest events, a `CPU:0 [LOST n EVENTS]` line says so first,
 * as the kernel marks a ring-buffer overrun (a replay then counts them).
 * @example writeFileSync('trace.txt', traceFtrace(machine)); // then: dmasim replay trace.txt
 */
export function traceFtrace(machine: { readonly trace: { readonly enabled: boolean; readonly events: readonly TraceEvent[]; readonly dropped?: number } }): string {
  if (typeof machine !== 'object' || machine === null || typeof machine.trace !== 'object' || machine.trace === null || !Array.isArray(machine.trace.events)) {
    throw new KernelError(EINVAL, 'traceFtrace', 'expected a Machine', 'machine');
  }
  if (!machine.trace.enabled) throw new KernelError(EINVAL, 'traceFtrace', 'the machine records no trace (build it with trace: true)', 'machine');
  const lines = [...HEADER];
  // Events the bounded trace dropped: the marker the kernel prints for a ring buffer overrun.
  const dropped = machine.trace.dropped ?? 0;
  if (dropped > 0) lines.push(`CPU:0 [LOST ${dropped} EVENTS]`);
  for (const e of machine.trace.events) {
    const ev = toFtraceEvent(e, lines.length + 1);
    if (ev !== null) lines.push(formatFtraceLine(ev));
  }
  return `${lines.join('\n')}\n`;
}
