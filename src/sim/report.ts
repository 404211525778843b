/**
 * @module sim/report
 * Text reports of a machine's state for the terminal.
 */
import { formatBytes } from '../core/size.ts';
import { PAGE_SIZE } from '../mm/constants.ts';
import { Machine } from './machine.ts';
import { notInstance } from '../core/args.ts';

/**
 * Memory summary: zones, free and allocated pages, /proc/buddyinfo.
 * @example console.log(memoryReport(machine))
 */
export function memoryReport(m: Machine): string {
  if (!(m instanceof Machine)) throw notInstance(m, Machine, 'memoryReport', 'm');
  const lines = [`machine ${m.name}: ${formatBytes(m.mm.totalPages * PAGE_SIZE)} RAM, seed ${m.seed}`];
  for (const z of m.mm.zoneStats()) {
    lines.push(`  zone ${z.name.padEnd(7)} present ${formatBytes(z.presentPages * PAGE_SIZE).padStart(9)}  free ${formatBytes(z.freePages * PAGE_SIZE).padStart(9)}`);
  }
  lines.push(`  allocated ${formatBytes(m.mm.allocatedPages * PAGE_SIZE)}, written ${formatBytes(m.mm.contents.residentPages * PAGE_SIZE)}`);
  lines.push('  /proc/buddyinfo (free blocks per order 0..10):');
  for (const l of m.mm.buddyinfo().split('\n')) lines.push(`    ${l}`);
  return lines.join('\n');
}
