/**
 * @module sim/html-report/iova
 * The IOVA picture. Each DMA domain's axis is its aperture: from the allocator's first pfn
 * (`init_iova_domain(..., base_pfn)`; IOVA 0 is never handed out) to the highest address its
 * devices may use, which is what `iommu_dma_alloc_iova` allocates below: the DMA mask, capped by the
 * bus limit and the IOMMU's input address width. Used ranges are drawn to scale on that axis, and
 * again magnified on a second axis spanning just the used part, with the 4 GiB line PCI devices'
 * first tries stay below (unless `forcedac`).
 */
import type { Device } from '../../device/device.ts';
import { Machine } from '../machine.ts';
import { notInstance } from '../../core/args.ts';
import { byteStep, byteTicks, esc, fmtBytes, fmtCount, hex, spacedX, svg, xAxis, type Frame, type Tick } from './svg.ts';

/** One DMA domain's IOVA space at one moment. */
export interface IovaDomainView {
  readonly id: number;
  /** 'DMA' or 'DMA-FQ'. */
  readonly type: string;
  /** IOVA granule, bytes. */
  readonly granule: number;
  /** First byte the allocator may hand out. */
  readonly start: number;
  /** One past the highest byte the domain's devices can use. */
  readonly end: number;
  /** How `end` was found, for the caption. */
  readonly endWhy: string;
  readonly devices: readonly string[];
  /** Allocated (and reserved) ranges as [first pfn, last pfn] in granules, lowest first. */
  readonly ranges: ReadonlyArray<readonly [number, number]>;
}

/**
 * The IOVA ranges allocated now, as [domain, first pfn, last pfn] (below 2^40): capture them while
 * the mappings are live and pass them as HtmlReportData.iovaRanges.
 * @example const iovaRanges = iovaRangesNow(m); // ... unmap ...; htmlReport(m, { iovaRanges })
 */
export function iovaRangesNow(m: Machine): Array<[number, number, number]> {
  if (!(m instanceof Machine)) throw notInstance(m, Machine, 'iovaRangesNow', 'm');
  const out: Array<[number, number, number]> = [];
  for (const d of m.iommu?.domains ?? []) for (const [lo, hi] of d.iovad?.ranges() ?? []) if (hi < 2 ** 40) out.push([d.id, lo, hi]);
  return out;
}

function deviceNamed(m: Machine, name: string): Device | undefined {
  for (const b of m.buses) {
    const d = b.devices.get(name);
    if (d !== undefined) return d;
  }
  return undefined;
}

/** Every DMA-API domain of the machine now, with its aperture and ranges. */
export function iovaDomainsNow(m: Machine): IovaDomainView[] {
  const iommu = m.iommu;
  if (iommu === null) return [];
  const top = 2 ** iommu.addressWidth;
  const out: IovaDomainView[] = [];
  for (const d of iommu.domains) {
    const iovad = d.iovad;
    if (iovad === null || iovad.granule === 0) continue;
    const devices = iommu.groups.filter((g) => g.domain === d).flatMap((g) => g.devices);
    let end = 0;
    let why = `the IOMMU's ${iommu.addressWidth}-bit input addresses`;
    for (const name of devices) {
      const dev = deviceNamed(m, name);
      const mask = dev?.dma_mask ?? null;
      if (dev === undefined || mask === null) continue;
      // min_not_zero(mask, bus_dma_limit), then the domain geometry: iommu_dma_alloc_iova.
      const limit = Math.min(dev.bus_dma_limit > 0 ? Math.min(mask, dev.bus_dma_limit) : mask, top - 1) + 1;
      if (limit > end) {
        end = limit;
        why = limit === top
          ? `${name}'s DMA mask (${mask >= 2 ** 63 ? 64 : Math.round(Math.log2(mask + 1))}-bit) capped by the IOMMU's ${iommu.addressWidth}-bit input addresses`
          : `${name}'s ${dev.bus_dma_limit > 0 && dev.bus_dma_limit < mask ? 'bus DMA limit' : `${Math.round(Math.log2(limit))}-bit DMA mask`}`;
      }
    }
    if (end === 0) end = top;
    const start = iovad.start_pfn * iovad.granule;
    const ranges = iovad.ranges().filter(([lo]) => lo * iovad.granule < end);
    out.push({ id: d.id, type: d.typeName, granule: iovad.granule, start, end, endWhy: why, devices, ranges });
  }
  return out;
}

/**
 * Views for ranges captured as [domain, first pfn, last pfn] (HtmlReportData.iovaRanges), with the
 * apertures of `known` (a snapshot's) or of the machine now, else the IOMMU's whole input range.
 */
export function viewsFromRanges(m: Machine, captured: ReadonlyArray<readonly [number, number, number]>, known: readonly IovaDomainView[]): IovaDomainView[] {
  const now = iovaDomainsNow(m);
  const ids = [...new Set(captured.map((r) => r[0]))];
  return ids.map((id) => {
    const base = known.find((v) => v.id === id) ?? now.find((v) => v.id === id);
    const granule = base?.granule ?? m.iommu?.granule ?? 4096;
    const top = 2 ** (m.iommu?.addressWidth ?? 48);
    const ranges = captured.filter((r) => r[0] === id).map((r) => [r[1], r[2]] as const).sort((a, b) => a[0] - b[0]);
    return base === undefined
      ? { id, type: 'DMA', granule, start: granule, end: top, endWhy: 'the IOMMU\'s input address width (the domain is gone)', devices: [], ranges }
      : { ...base, ranges };
  });
}

const FRAME_X = 150;
const FRAME_W = 640;
const BAR_H = 16;
const BLOCK_H = 176;

/** One domain: the aperture bar, the magnified bar, connectors between them, two axes. */
function domainBlock(v: IovaDomainView, top: number): string {
  const g = v.granule;
  const main: Frame = { x: FRAME_X, y: top + 22, w: FRAME_W, h: BAR_H };
  const span = v.end - v.start;
  const px = (a: number): number => main.x + (main.w * (a - v.start)) / span;
  let out = `<text class="tick y" x="${FRAME_X - 8}" y="${main.y + 12}" text-anchor="end">domain ${v.id} aperture</text>`;
  out += `<rect x="${main.x}" y="${main.y}" width="${main.w}" height="${BAR_H}" fill="#eef3f6" stroke="#9aa5b1"/>`;
  const dma32 = 2 ** 32;
  const used = v.ranges.reduce((n, [lo, hi]) => n + (hi - lo + 1) * g, 0);
  const rangeTitle = ([lo, hi]: readonly [number, number]): string => `domain ${v.id}: ${hex(lo * g)}-${hex((hi + 1) * g - 1)} (${fmtBytes((hi - lo + 1) * g)}, ${fmtCount(hi - lo + 1)} IOVA pages)`;
  // Drawn to scale; a range narrower than a pixel is drawn one pixel wide so it stays visible.
  for (const r of v.ranges) out += `<rect x="${px(r[0] * g)}" y="${main.y + 1}" width="${Math.max(1, (main.w * (r[1] - r[0] + 1) * g) / span)}" height="${BAR_H - 2}" fill="#00838f"><title>${esc(rangeTitle(r))}</title></rect>`;
  if (dma32 > v.start && dma32 < v.end) out += `<line x1="${px(dma32)}" y1="${main.y - 4}" x2="${px(dma32)}" y2="${main.y + BAR_H + 4}" stroke="#d32f2f" stroke-dasharray="3 2"><title>4 GiB: PCI devices' IOVAs are tried below it first</title></line>`;
  const ends: Tick[] = [{ at: v.start, label: hex(v.start) }, { at: v.end, label: hex(v.end - 1) }];
  out += xAxis(main, spacedX(byteTicks(v.start, v.end, 4).map((a) => ({ at: a, label: fmtBytes(a) })), px, ends), px, `IOVA, bytes (aperture ${hex(v.start)}–${hex(v.end - 1)}, ${fmtBytes(span)})`);
  if (v.ranges.length === 0) return `${out}<text x="${FRAME_X}" y="${top + 110}" fill="#555">no IOVA allocated at this moment</text>`;
  // The magnified axis: the used span rounded out to twice the power of two covering it, so the
  // free space around the ranges shows too.
  const lo0 = (v.ranges[0] as readonly [number, number])[0] * g;
  const hi0 = (Math.max(...v.ranges.map((r) => r[1])) + 1) * g;
  const step = 2 * byteStep(hi0 - lo0, 1);
  const zlo = Math.floor(lo0 / step) * step;
  const zhi = Math.min(Math.ceil(hi0 / step) * step, Math.max(hi0, v.end));
  const zoom: Frame = { x: FRAME_X, y: top + 108, w: FRAME_W, h: BAR_H };
  const zx = (a: number): number => zoom.x + (zoom.w * (a - zlo)) / (zhi - zlo);
  const zoomFactor = span / (zhi - zlo);
  const ax = px(zlo);
  const bx = Math.max(ax + 1, px(zhi));
  // Under everything else: the connector from the magnified span on the aperture bar to the zoom bar.
  out = `<polygon points="${ax},${main.y + BAR_H} ${bx},${main.y + BAR_H} ${zoom.x + zoom.w},${zoom.y} ${zoom.x},${zoom.y}" fill="#00838f" fill-opacity="0.06" stroke="#00838f" stroke-opacity="0.35" stroke-dasharray="2 2"/>${out}`;
  const cx = Math.min(main.x + main.w, Math.max(main.x, (ax + bx) / 2));
  const pointer = `in use: ${hex(lo0)}–${hex(hi0 - 1)}`;
  // The pointer's label reads rightwards, or leftwards when the used part is near the aperture's end.
  const toLeft = cx + 8 + pointer.length * 6 > main.x + main.w;
  out += `<polygon points="${cx - 5},${main.y - 10} ${cx + 5},${main.y - 10} ${cx},${main.y - 2}" fill="#00838f"/><text x="${toLeft ? cx - 8 : cx + 8}" y="${main.y - 3}" font-size="10" fill="#00838f" text-anchor="${toLeft ? 'end' : 'start'}">${esc(pointer)}</text>`;
  out += `<text class="tick y" x="${FRAME_X - 8}" y="${zoom.y + 12}" text-anchor="end">used part, ×${new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 }).format(zoomFactor)}</text>`;
  out += `<rect x="${zoom.x}" y="${zoom.y}" width="${zoom.w}" height="${BAR_H}" fill="#eef3f6" stroke="#9aa5b1"/>`;
  for (const r of v.ranges) {
    if ((r[1] + 1) * g <= zlo || r[0] * g >= zhi) continue;
    out += `<rect x="${zx(r[0] * g)}" y="${zoom.y + 1}" width="${Math.max(1, zx((r[1] + 1) * g) - zx(r[0] * g))}" height="${BAR_H - 2}" fill="#00838f" stroke="#fff" stroke-width="0.3"><title>${esc(rangeTitle(r))}</title></rect>`;
  }
  if (dma32 > zlo && dma32 < zhi) out += `<line x1="${zx(dma32)}" y1="${zoom.y - 4}" x2="${zx(dma32)}" y2="${zoom.y + BAR_H + 4}" stroke="#d32f2f" stroke-dasharray="3 2"/>`;
  const zt = byteTicks(zlo, zhi, 4).map((a) => ({ at: a, label: hex(a) }));
  out += xAxis(zoom, spacedX(zt, zx, [{ at: zlo, label: hex(zlo) }, { at: zhi, label: hex(zhi) }]), zx, `IOVA, bytes: the used part, ${fmtBytes(used)} in ${fmtCount(v.ranges.length)} range(s)`);
  return out;
}

/** The IOVA section: one block per domain, and a caption per domain. */
export function iovaPicture(views: readonly IovaDomainView[], when: string): string {
  const shown = views.filter((v) => v.ranges.length > 0 || v.devices.length > 0).slice(0, 8);
  if (shown.length === 0) return `<p class="cap">No DMA domain (no IOMMU, or no device behind it) ${esc(when)}.</p>`;
  const body = shown.map((v, i) => domainBlock(v, i * BLOCK_H)).join('');
  const y = shown.length * BLOCK_H;
  const chart = svg(FRAME_X + FRAME_W + 30, y + 4, 'IOVA space by domain', `${body}<text class="axis-title y" x="14" y="${y / 2}" text-anchor="middle" transform="rotate(-90 14 ${y / 2})">DMA domain</text>`);
  const caps = shown.map((v) => {
    const used = v.ranges.reduce((n, [lo, hi]) => n + (hi - lo + 1) * v.granule, 0);
    return `Domain ${v.id} (${esc(v.type)}${v.devices.length > 0 ? `; ${esc(v.devices.join(', '))}` : ''}): aperture ${hex(v.start)}–${hex(v.end - 1)}, its end set by ${esc(v.endWhy)}; ${fmtBytes(used)} in ${fmtCount(v.ranges.length)} range(s) ${esc(when)}.`;
  });
  const more = views.length > shown.length ? ` ${views.length - shown.length} more domain(s) not drawn.` : '';
  return `${chart}<p class="cap">${caps.join('<br>')} Top bar: the whole aperture to scale (a range narrower than a pixel is drawn 1 px wide); bottom bar: the used part magnified. Dashed red: 4 GiB, below which iommu-dma first tries PCI devices' IOVAs.${more}</p>`;
}
