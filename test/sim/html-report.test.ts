import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DMA_TO_DEVICE, EINVAL, GFP_KERNEL, Machine, PAGE_SIZE, dma_map_page_attrs, dma_unmap_page_attrs, htmlReport, iovaRangesNow,
  markReportSnapshot, memorySnapshot,
} from '../../src/index.ts';
import { defaultScenario, type DefaultScenarioResult } from '../../src/sim/scenarios.ts';
import { OWNER_COLORS } from '../../src/sim/html-report/memory-map.ts';

/** The page's sections, by their h2 heading. */
function sections(html: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of html.split('<h2>').slice(1)) out.set(part.slice(0, part.indexOf('</h2>')), part);
  return out;
}
const section = (html: string, start: string): string => [...sections(html)].find(([h]) => h.startsWith(start))?.[1] ?? '';
/** The tick labels of the axis titled `title` (the ticks come before their title in the SVG). */
const texts = (svgPart: string, cls: string): string[] => [...svgPart.matchAll(new RegExp(`class="${cls}"[^>]*>([^<]*)<`, 'g'))].map((x) => x[1] as string);

/** The report as `dmasim run --html` writes it for the default scenario. */
function defaultReport(r: DefaultScenarioResult): string {
  return htmlReport(r.machine, { title: 'dmasim: the default scenario', entryLengths: r.entryLengths, segmentLengths: r.segmentLengths, iovaRanges: r.iovaRanges, text: r.report });
}

describe('HTML report', () => {
  let r: DefaultScenarioResult;
  let html: string;
  beforeAll(() => {
    r = defaultScenario(1);
    html = defaultReport(r);
  });

  it('is a self-contained page with the five pictures', () => {
    const m = new Machine({ memory: '8G', iommu: { mode: 'lazy' }, fragment: { level: 0.5 }, trace: true });
    const page = htmlReport(m, { entryLengths: [4096, 8192], segmentLengths: [12288], iovaRanges: iovaRangesNow(m), text: 'hello <world>' });
    expect(page.startsWith('<!doctype html>')).toBe(true);
    expect(page.match(/<svg /g)?.length ?? 0).toBeGreaterThanOrEqual(3);
    for (const h of ['Physical memory by owner', 'Segment lengths before and after IOMMU merging', 'IOVA space', 'swiotlb occupancy', 'Timeline']) expect(page).toContain(h);
    expect(page).toContain('hello &lt;world&gt;');
    expect(page).not.toMatch(/<script|https?:\/\//); // nothing external
  });

  it('a histogram bucket of 1 beside one of thousands is still visible (at least 2 px tall)', () => {
    const m = new Machine({ memory: '1G' });
    const page = htmlReport(m, { entryLengths: [4096, ...Array.from({ length: 2048 }, () => 32768)], segmentLengths: [65536] });
    const ones = [...page.matchAll(/<rect [^>]*height="([\d.]+)"[^>]*><title>1 /g)].map((x) => Number(x[1]));
    expect(ones.length).toBeGreaterThanOrEqual(1);
    for (const h of ones) expect(h).toBeGreaterThanOrEqual(2);
  });

  it('every chart has an x and a y axis, each with a title and at least two tick values', () => {
    const charts = [...html.matchAll(/<svg class="chart"[\s\S]*?<\/svg>/g)].map((x) => x[0]);
    expect(charts).toHaveLength(5);
    for (const c of charts) {
      const name = /aria-label="([^"]*)"/.exec(c)?.[1];
      expect(texts(c, 'axis-title x').length, name).toBeGreaterThanOrEqual(1);
      expect(texts(c, 'axis-title y'), name).toHaveLength(1);
      expect(texts(c, 'tick x').length, name).toBeGreaterThanOrEqual(2);
      expect(texts(c, 'tick y').length, name).toBeGreaterThanOrEqual(2);
    }
    // The histogram: y counts with round ticks from 0 past the tallest bar (2,048 CPU entries of up to 32 KiB);
    // x buckets labelled by their upper end, so the 64 KiB segments stand over '64 KiB'.
    const hist = section(html, 'Segment lengths');
    expect(texts(hist, 'axis-title y')).toEqual(['count']);
    expect(texts(hist, 'tick y')).toEqual(['0', '500', '1,000', '1,500', '2,000', '2,500']);
    expect(texts(hist, 'axis-title x')[0]).toMatch(/^length, bytes/);
    expect(texts(hist, 'tick x')).toEqual(['4 KiB', '8 KiB', '16 KiB', '32 KiB', '64 KiB']);
    expect(hist).toMatch(/<title>1,024 DMA segments of over 32 KiB, up to 64 KiB<\/title>/);
    // Small counts still get whole-number ticks.
    const few = section(htmlReport(new Machine({ memory: '64M' }), { entryLengths: [4096, 65536, 2 ** 20], segmentLengths: [2 ** 21] }), 'Segment lengths');
    expect(texts(few, 'tick y')).toEqual(['0', '1']);
    expect(texts(few, 'tick x').at(-1)).toBe('2 MiB');
    // swiotlb: percent in use against slot index, up to the pool's 32768 slots.
    const tlb = section(html, 'swiotlb');
    expect(texts(tlb, 'tick y')).toEqual(['0%', '50%', '100%']);
    expect(texts(tlb, 'tick x').at(-1)).toBe('32,768');
  });

  it('memory is drawn while the default scenario\'s buffer is live: its vmalloc pages and the IOMMU page tables show, not only the fragmenter', () => {
    const mem = section(html, 'Physical memory');
    const legend = texts(mem, 'legend');
    for (const owner of ['fragmenter', 'free', 'vmalloc', 'pgtable', 'swiotlb']) expect(legend.some((l) => l.startsWith(`${owner} `)), owner).toBe(true);
    expect(legend.find((l) => l.startsWith('vmalloc '))).toMatch(/^vmalloc 64 MiB/);
    // More than one owner colour among the cells, and the thin-spread buffer gets its dots.
    const fills = new Set([...mem.matchAll(/<rect class="dot"[^>]*fill="([^"]+)"/g)].map((x) => x[1]));
    expect(fills.has(OWNER_COLORS['vmalloc'])).toBe(true);
    expect(fills.size).toBeGreaterThan(1);
    expect(mem).toContain('at the snapshot “64 MiB vmalloc buffer DMA-mapped for 0000:01:00.0');
    // Drawn as the machine is after teardown, the buffer is gone: what the snapshot is for.
    const after = section(htmlReport(r.machine, { memorySnapshot: memorySnapshot(r.machine) }), 'Physical memory');
    expect(texts(after, 'legend').some((l) => l.startsWith('vmalloc '))).toBe(false);
  });

  it('the IOVA axis is the domain\'s aperture; the used range is drawn to scale in it, and magnified', () => {
    const iova = section(html, 'IOVA space');
    const ticks = texts(iova, 'tick x');
    // IOVA pfn 1 up to the 64-bit device's mask capped by the IOMMU's 48-bit input.
    expect(ticks[0]).toBe('0x1000');
    expect(ticks).toContain('0xffffffffffff');
    expect(texts(iova, 'axis-title x')[0]).toBe('IOVA, bytes (aperture 0x1000–0xffffffffffff, 256 TiB)');
    // The magnified axis spans the used 64 MiB below 4 GiB with free room beside it.
    expect(ticks).toContain('0xf8000000');
    expect(ticks).toContain('0x100000000');
    expect(iova).toMatch(/<title>domain 1: 0xfc000000-0xffffffff \(64 MiB, 16,384 IOVA pages\)<\/title>/);
  });

  it('a 32-bit device\'s aperture ends at 4 GiB, and its top-down IOVAs sit at the right end of the bar', () => {
    const m = new Machine({ memory: '8G', iommu: { mode: 'strict' }, trace: true });
    const dev = m.pci.addDevice({ name: '0000:02:00.0', dmaMask: 32 });
    m.pci.bind(dev, { name: 'dev32', probe() {} });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 4) as number;
    const addr = dma_map_page_attrs(dev, pfn, 0, 16 * PAGE_SIZE, DMA_TO_DEVICE, 0);
    const snap = markReportSnapshot(m, { label: 'mapped' });
    dma_unmap_page_attrs(dev, addr, 16 * PAGE_SIZE, DMA_TO_DEVICE, 0);
    expect(snap.iova[0]).toMatchObject({ start: PAGE_SIZE, end: 2 ** 32 });
    const iova = section(htmlReport(m), 'IOVA space');
    expect(texts(iova, 'tick x')).toContain('0xffffffff');
    expect(iova).not.toContain('0xffffffffffff');
    const x = Number(/<rect x="([\d.]+)"[^>]*><title>domain/.exec(iova)?.[1]);
    expect(x).toBeGreaterThan(150 + 0.99 * 640); // the frame's x and width: the range is at the top of the aperture
  });

  it('the timeline falls back to event order when the events share one instant, and uses virtual time when they are spread', () => {
    const tl = section(html, 'Timeline');
    expect(texts(tl, 'axis-title x')[0]).toMatch(/^event # \(trace order/);
    expect(texts(tl, 'tick x')).toEqual(['#0', '#1', '#2', '#3']);
    expect(texts(tl, 'tick x2')).toEqual(['t=0 ns', 't=0 ns', 't=0 ns', 't=10 ms']);
    expect(tl).toContain('x is event order, not time: 3 of the 4 events happen at the same virtual time (t=0 ns)');
    expect(tl).toContain('memory snapshot');
    expect(texts(tl, 'axis-title y')).toEqual(['event kind']);

    const m = new Machine({ memory: '1G', iommu: { mode: 'strict' }, trace: true });
    const dev = m.pci.addDevice({ name: '0000:03:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'spread', probe() {} });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    for (let i = 0; i < 5; i++) {
      m.clock.advance(1e6);
      const a = dma_map_page_attrs(dev, pfn, 0, PAGE_SIZE, DMA_TO_DEVICE, 0);
      m.clock.advance(1e6);
      dma_unmap_page_attrs(dev, a, PAGE_SIZE, DMA_TO_DEVICE, 0);
    }
    const spread = section(htmlReport(m), 'Timeline');
    expect(texts(spread, 'axis-title x')).toEqual(['virtual time, ms']);
    expect(texts(spread, 'tick x')).toContain('10');
    expect(spread).toContain('x is virtual time');
  });

  it('takes a snapshot only of its own machine, and checks its arguments', () => {
    const a = new Machine({ memory: '64M' });
    const b = new Machine({ memory: '64M' });
    expect(() => htmlReport(a, { memorySnapshot: memorySnapshot(b) })).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'data' }));
    expect(() => htmlReport(a, { memorySnapshot: {} as never })).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'data' }));
    expect(() => memorySnapshot(a, { label: 5 } as never)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'opts' }));
    expect(() => markReportSnapshot({} as never)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'm' }));
    const s = memorySnapshot(a, { label: 'x' });
    // INVARIANT: each cell's counts add up to its pages; the totals to the machine's.
    expect(s.totals.reduce((n, v) => n + v, 0)).toBe(a.mm.maxPfn);
    expect(s.counts.reduce((n, v) => n + v, 0)).toBe(a.mm.maxPfn);
  });

  it('dmasim run --html draws the default scenario with its buffer live', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dmasim-html-'));
    try {
      const out = join(dir, 'r.html');
      const run = spawnSync(process.execPath, ['bin/dmasim.mjs', 'run', '--html', out], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      expect(texts(section(readFileSync(out, 'utf8'), 'Physical memory'), 'legend').some((l) => l.startsWith('vmalloc 64 MiB'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

/**
 * The page as Chromium lays it out: a script added to a copy of it measures every text of every
 * chart and writes what it found into the DOM, which `--dump-dom` prints.
 */
const CHROMIUM = '/usr/bin/chromium';
const MEASURE = `<script>
const out = [];
for (const svg of document.querySelectorAll('svg.chart')) {
  const box = svg.getBoundingClientRect();
  const name = svg.getAttribute('aria-label');
  const rects = [...svg.querySelectorAll('text')].map((t) => ({ t: t.textContent, r: t.getBoundingClientRect() }));
  for (const { t, r } of rects) if (r.left < box.left - 0.5 || r.right > box.right + 0.5 || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5) out.push(name + ': text "' + t + '" sticks out of its picture');
  for (let i = 0; i < rects.length; i++) for (let j = i + 1; j < rects.length; j++) {
    const a = rects[i].r, b = rects[j].r;
    if (a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1) out.push(name + ': "' + rects[i].t + '" overlaps "' + rects[j].t + '"');
  }
}
if (document.documentElement.scrollWidth > window.innerWidth) out.push('the page is wider than the window: ' + document.documentElement.scrollWidth);
const pre = document.createElement('pre'); pre.id = 'layout'; pre.textContent = JSON.stringify({ charts: document.querySelectorAll('svg.chart').length, problems: out }); document.body.append(pre);
</script>`;

describe.skipIf(!existsSync(CHROMIUM))('HTML report in headless Chromium', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dmasim-chromium-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function layout(html: string, name: string): { charts: number; problems: string[] } {
    const file = join(dir, `${name}.html`);
    writeFileSync(file, html.replace('</body>', `${MEASURE}</body>`));
    const dom = execFileSync(CHROMIUM, [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', `--user-data-dir=${join(dir, 'profile')}`, '--window-size=1100,900', '--dump-dom', `file://${file}`,
    ], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 * 2 ** 20, timeout: 60_000 });
    const found = /<pre id="layout">([^<]*)<\/pre>/.exec(dom);
    expect(found, 'the measuring script ran').not.toBeNull();
    return JSON.parse((found?.[1] ?? '{}').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&')) as { charts: number; problems: string[] };
  }

  it('the default scenario\'s page: no label sticks out of its picture or overlaps another, nothing wider than the window', () => {
    const r = defaultScenario(1);
    expect(layout(defaultReport(r), 'default')).toEqual({ charts: 5, problems: [] });
  }, 60_000);

  it('a busier machine (three domains, 32- to 64-bit masks, a spread timeline) lays out as cleanly', () => {
    const m = new Machine({ memory: '4G', iommu: { mode: 'strict' }, swiotlb: { size: '4M' }, fragment: { level: 0.3 }, trace: true });
    const devs = [32, 40, 64].map((bits, i) => {
      const d = m.pci.addDevice({ name: `0000:0${i + 1}:00.0`, dmaMask: bits });
      m.pci.bind(d, { name: `d${i}`, probe() {} });
      return d;
    });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 6) as number;
    for (const [i, d] of devs.entries()) {
      m.clock.advance(250_000 * (i + 1));
      dma_map_page_attrs(d, pfn, 0, 64 * PAGE_SIZE, DMA_TO_DEVICE, 0);
    }
    markReportSnapshot(m, { label: 'three devices mapped' });
    const html = htmlReport(m, { entryLengths: [4096, 8192, 65536, 2 ** 20], segmentLengths: [2 ** 20, 2 ** 21] });
    expect(layout(html, 'busy')).toEqual({ charts: 5, problems: [] });
  }, 60_000);
});
