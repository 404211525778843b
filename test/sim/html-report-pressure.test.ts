/**
 * The replay report's pressure chart: whole-number ticks for counts (a peak of 1 is not labelled
 * 0, 0, 1, 1, 1), power-of-two byte ticks for bytes, the axis reaching the peak, the peak named.
 */
import { describe, expect, it } from 'vitest';
import { pressurePicture } from '../../src/sim/html-report/pressure.ts';

const ticks = (svg: string, cls: string) => [...svg.matchAll(new RegExp(`<text class="tick ${cls}"[^>]*>([^<]*)</text>`, 'g'))].map((m) => m[1]);

describe('pressure chart', () => {
  it('counts get whole-number ticks up to at least the peak; the caption names the peak and its time', () => {
    const p = pressurePicture({ title: 'live mappings', unit: 'mappings', points: [[0, 0], [0.000001, 1], [0.002, 0]] });
    expect(ticks(p, 'y')).toEqual(['0', '1']);
    expect(p).toContain('live mappings: peak 1 at 1 µs (red dot), 3 samples.');
    const q = pressurePicture({ title: 'ranges', unit: 'ranges', points: [[0, 0], [1, 1024]] });
    const y = ticks(q, 'y').map((t) => Number((t ?? '').replace(/,/g, '')));
    expect(y.every(Number.isInteger)).toBe(true);
    expect(Math.max(...y)).toBeGreaterThanOrEqual(1024);
  });

  it('bytes get power-of-two ticks in binary units', () => {
    const p = pressurePicture({ title: 'IOVA', unit: 'bytes', kind: 'bytes', points: [[0, 0], [1, 4096]] });
    expect(ticks(p, 'y')).toEqual(['0', '1 KiB', '2 KiB', '3 KiB', '4 KiB']);
  });

  it('no samples: says so', () => {
    expect(pressurePicture({ title: 't', unit: 'u', points: [] })).toContain('No samples');
  });
});
