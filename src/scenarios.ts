/**
 * @module scenarios
 * Built-in scenarios; `default` is what `npm start` runs.
 */
import { formatBytes } from './core/size.ts';
import { formatRunHistogram, runHistogram } from './mm/fragment.ts';
import { Machine } from './sim/machine.ts';
import { memoryReport } from './sim/report.ts';

/**
 * The default simulation: a fragmented 16 GiB machine, a 64 MiB vmalloc buffer, and how its pages
 * fall into physically contiguous runs.
 * @returns the report text.
 */
export function defaultScenario(seed = 1): string {
  const m = new Machine({ memory: '16G', seed, fragment: { level: 0.6 } });
  const size = 64 * 2 ** 20;
  const area = m.mm.vmalloc(size);
  if (area === null) throw new Error('vmalloc failed');
  const out = [
    memoryReport(m),
    `fragmenter holds ${formatBytes((m.bootFragment?.heldPages ?? 0) * 4096)} in ${m.bootFragment?.runs ?? 0} gaps`,
    `vmalloc(${formatBytes(size)}) at 0x${area.addr.toString(16)}: ${area.nrPages} pages in physically contiguous runs of`,
    formatRunHistogram(runHistogram(area.pages)),
  ];
  m.mm.vfree(area);
  return out.join('\n');
}
