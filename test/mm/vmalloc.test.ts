import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DMA_FROM_DEVICE, GFP_KERNEL, KernelBug, Machine, PAGE_SIZE, VMALLOC_START, __GFP_NOWARN, dma_map_page_attrs, dma_mapping_error, runHistogram } from '../../src/index.ts';

describe('vmalloc', () => {
  it('backs an area with order-0 pages and frees them all', () => {
    const m = new Machine({ memory: '256M' });
    const free = m.mm.freePages;
    const area = m.mm.vmalloc(10 * PAGE_SIZE + 1);
    expect(area).not.toBeNull();
    if (area === null) return;
    expect(area.nrPages).toBe(11);
    expect(area.addr).toBe(VMALLOC_START);
    expect(new Set(area.pages).size).toBe(11);
    for (const p of area.pages) expect(m.mm.meta.headOrder(p)).toBe(0);
    expect(m.mm.freePages).toBe(free - 11);
    m.mm.vfree(area);
    expect(m.mm.freePages).toBe(free);
    expect(() => m.mm.vfree(area)).toThrow(KernelBug);
  });

  it('VmallocPageIter: page_count = ceil(size / PAGE_SIZE), empty yields nothing', () => {
    const m = new Machine({ memory: '64M' });
    const area = m.mm.vmalloc(3 * PAGE_SIZE - 100);
    expect(area?.pageIter().pageCount).toBe(3);
    expect(area?.pageIter().size).toBe(3 * PAGE_SIZE - 100);
    expect([...(area?.pageIter() ?? [])]).toEqual(Array.from(area?.pages ?? []));
    expect(area?.pageIter().pfns()).toBeInstanceOf(Uint32Array);
  });

  it('vmalloc(0): WARN_ON_ONCE and NULL; too large: the kernel error and NULL', () => {
    const m = new Machine({ memory: '64M' });
    expect(m.mm.vmalloc(0)).toBeNull();
    expect(m.klog.warnCount).toBe(1);
    expect(m.mm.vmalloc(2 ** 30)).toBeNull();
    expect(m.klog.messages.at(-1)?.message).toMatch(/vmalloc error: size 1073741824, exceeds total pages/);
  });

  it('a page allocation failing part-way leaves nothing allocated', () => {
    const m = new Machine({ memory: '64M' });
    const free = m.mm.freePages;
    for (let k = 1; k <= 4; k++) {
      m.faults.inject('page', { nth: k });
      expect(m.mm.vmalloc(4 * PAGE_SIZE, GFP_KERNEL | __GFP_NOWARN)).toBeNull();
      expect(m.mm.freePages).toBe(free);
      expect(m.mm.allocatedPages).toBe(0);
    }
    m.faults.clear();
    expect(m.mm.vmalloc(4 * PAGE_SIZE)).not.toBeNull();
  });

  it('reads and writes bytes through the virtual mapping', () => {
    const m = new Machine({ memory: '64M', fragment: { level: 1 } });
    const area = m.mm.vmalloc(5 * PAGE_SIZE);
    if (area === null) throw new Error('vmalloc');
    const data = Uint8Array.from({ length: 2 * PAGE_SIZE }, (_, i) => i & 0xff);
    area.write(PAGE_SIZE - 10, data);
    expect(area.read(PAGE_SIZE - 10, data.length)).toEqual(data);
    const p1 = area.pages[1] as number;
    expect(m.mm.readPhys(p1 * PAGE_SIZE, 1)[0]).toBe(10);
    expect(m.mm.virt_to_phys(area.addr + PAGE_SIZE + 5)).toBe(p1 * PAGE_SIZE + 5);
    expect(() => area.read(5 * PAGE_SIZE - 1, 2)).toThrow(/outside the area/);
  });

  it('property: areas cover exactly their pages, disjoint from each other', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 40 * PAGE_SIZE }), { minLength: 1, maxLength: 8 }), (sizes) => {
      const m = new Machine({ memory: '32M', fragment: { run: [1, 4] } });
      const seen = new Set<number>();
      for (const s of sizes) {
        const a = m.mm.vmalloc(s, GFP_KERNEL | __GFP_NOWARN);
        if (a === null) continue;
        expect(a.nrPages).toBe(Math.ceil(s / PAGE_SIZE));
        for (const p of a.pages) {
          expect(seen.has(p)).toBe(false);
          seen.add(p);
          expect(m.mm.meta.owner[p]).toBe(2);
        }
      }
      expect(m.mm.allocatedPages).toBe(seen.size + (m.bootFragment?.heldPages ?? 0));
    }), { numRuns: 30 });
  });

  it('alloc_pages_exact gives back the tail of the block', () => {
    const m = new Machine({ memory: '64M' });
    const free = m.mm.freePages;
    const va = m.mm.alloc_pages_exact(5 * PAGE_SIZE);
    if (va === null) throw new Error('alloc');
    expect(m.mm.freePages).toBe(free - 5);
    m.mm.free_pages_exact(va, 5 * PAGE_SIZE);
    expect(m.mm.freePages).toBe(free);
  });
});

describe('fragmentation', () => {
  it('level 0 leaves memory contiguous; level 1 leaves no two pages adjacent', () => {
    const flat = new Machine({ memory: '256M' });
    expect(runHistogram(flat.mm.vmalloc(8 * 2 ** 20)?.pages ?? []).runs).toBe(1);
    const frag = new Machine({ memory: '256M', fragment: { level: 1 } });
    const h = runHistogram(frag.mm.vmalloc(8 * 2 ** 20)?.pages ?? []);
    expect(h.longestRun).toBe(1);
    expect(h.runs).toBe(2048);
  });

  it('a single run size gives exactly that run length; mixtures hand out short runs first', () => {
    const m = new Machine({ memory: '512M', fragment: { run: [16, 16] } });
    const h = runHistogram(m.mm.vmalloc(4 * 2 ** 20)?.pages ?? []);
    expect(h.meanRun).toBe(16);
    expect(h.longestRun).toBe(16);
    const mix = new Machine({ memory: '1G', fragment: { run: [1, 64], seed: 3 } });
    const pages = mix.mm.vmalloc(200 * 2 ** 20)?.pages ?? new Uint32Array(0);
    expect(pages.length).toBe(200 * 256);
    const first = runHistogram(pages.subarray(0, 1000));
    expect(first.longestRun).toBe(1);
    expect(runHistogram(pages).longestRun).toBeGreaterThanOrEqual(32);
  });

  it('unfragment returns every held page', async () => {
    const { unfragment } = await import('../../src/index.ts');
    const m = new Machine({ memory: '64M', fragment: { level: 0.5 } });
    const held = m.bootFragment?.heldPages ?? 0;
    expect(held).toBeGreaterThan(0);
    expect(unfragment(m.mm)).toBe(held);
    expect(m.mm.allocatedPages).toBe(0);
    const fresh = new Machine({ memory: '64M' });
    expect(m.mm.zoneStats()).toEqual(fresh.mm.zoneStats());
  });

  it('rejects bad options', () => {
    expect(() => new Machine({ memory: '64M', fragment: { level: 2 } })).toThrow(/level/);
    expect(() => new Machine({ memory: '64M', fragment: { run: [4, 2] } })).toThrow(/run/);
  });
});

describe('machines', () => {
  it('two machines share nothing', () => {
    const a = new Machine({ memory: '64M' });
    const b = new Machine({ memory: '64M' });
    a.mm.writePhys(0x200000, new Uint8Array([9]));
    a.mm.alloc_pages(GFP_KERNEL, 3);
    a.faults.inject('page', { nth: 1 });
    expect(b.mm.readPhys(0x200000, 1)[0]).toBe(0);
    expect(b.mm.allocatedPages).toBe(0);
    expect(b.mm.alloc_pages(GFP_KERNEL, 0)).not.toBeNull();
  });
});

describe('large machines', () => {
  it('a 1 TiB machine boots and vmallocs, paying only for what it touches', () => {
    const m = new Machine({ memory: '1T' });
    expect(m.mm.totalPages).toBe(2 ** 28);
    const before = m.mm.allocatedPages; // the boot-time swiotlb pool
    expect(before).toBe(16384);
    const a = m.mm.vmalloc(64 * 2 ** 20);
    expect(a?.nrPages).toBe(16384);
    m.mm.vfree(a);
    expect(m.mm.allocatedPages).toBe(before);
  });
});

describe('vfree and page references', () => {
  it('a page with an extra reference (get_page) stays allocated with one; its neighbours are freed', () => {
    // The bulk free once started its next run on the page that kept a reference and dropped a
    // second one, freeing a page someone still held.
    for (const held of [[1], [0], [3], [1, 2], [0, 1, 2, 3]]) {
      const m = new Machine({ memory: '256M' });
      const before = m.mm.allocatedPages;
      const area = m.mm.vmalloc(4 * PAGE_SIZE);
      if (area === null) throw new Error('vmalloc');
      const pages = Array.from(area.pages);
      for (const k of held) m.mm.get_page(pages[k] as number);
      m.mm.vfree(area);
      expect(pages.map((p) => m.mm.meta.refcountOf(p)), `held ${held}`).toEqual(pages.map((_, k) => (held.includes(k) ? 1 : 0)));
      expect(m.mm.allocatedPages).toBe(before + held.length);
      for (const k of held) m.mm.__free_pages(pages[k] as number, 0);
      expect(m.mm.allocatedPages).toBe(before);
      expect(m.audit()).toEqual([]);
    }
  });
});

describe('finding the vmalloc area of an address', () => {
  it('agrees with a walk of every live area, for addresses inside, at the edges, in guard pages and gaps', () => {
    // findVmArea bisects the sorted starts (planted: without the end check an address in a guard
    // page or a gap is given the area below it; a start list not kept sorted or not shrunk on
    // vfree/vunmap names a freed or wrong area).
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.integer({ min: 1, max: 6 })), { maxLength: 80 }), (steps) => {
      const m = new Machine({ memory: '256M', swiotlb: false, dmaDebug: false });
      const live: { area: NonNullable<ReturnType<typeof m.mm.vmalloc>>; vmapped: number[] | null }[] = [];
      const check = (): void => {
        const probes: number[] = [VMALLOC_START - 1, VMALLOC_START];
        for (const { area } of live) {
          const end = area.addr + area.nrPages * PAGE_SIZE;
          probes.push(area.addr - 1, area.addr, area.addr + 1, end - 1, end, end + PAGE_SIZE - 1, end + PAGE_SIZE);
        }
        for (const v of probes) {
          const want = live.find(({ area }) => v >= area.addr && v < area.addr + area.nrPages * PAGE_SIZE)?.area;
          expect(m.mm.findVmArea(v)).toBe(want);
        }
        expect([...m.mm.vmAreas()].length).toBe(live.length);
      };
      for (const [what, pages] of steps) {
        if (what < 4 || live.length === 0) {
          const area = m.mm.vmalloc(pages * PAGE_SIZE, GFP_KERNEL | __GFP_NOWARN);
          if (area !== null) live.push({ area, vmapped: null });
        } else if (what < 6) {
          const pfns = Array.from({ length: pages }, () => m.mm.alloc_pages(GFP_KERNEL, 0) as number);
          const area = m.mm.vmap(pfns, pages);
          if (area !== null) live.push({ area, vmapped: pfns });
        } else {
          const [gone] = live.splice(what % live.length, 1) as [typeof live[number]];
          if (gone.vmapped === null) m.mm.vfree(gone.area);
          else {
            m.mm.vunmap(gone.area.addr);
            for (const p of gone.vmapped) m.mm.__free_pages(p, 0);
          }
        }
        check();
      }
    }), { numRuns: 150 });
  });
});

describe('VmArea.readInto', () => {
  it('reads what read() reads into the caller\'s buffer, on scattered and contiguous pages, at any offset', () => {
    // The walk joins physically adjacent pages into one span (planted: a span extended past a page
    // that does not follow, or its start and offset mixed up, reads other pages' bytes).
    for (const layout of ['vmalloc', 'vmap of shuffled runs'] as const) {
      const m = new Machine({ memory: '512M', swiotlb: false, dmaDebug: false });
      let area: NonNullable<ReturnType<typeof m.mm.vmalloc>>;
      if (layout === 'vmalloc') area = m.mm.vmalloc(16 * PAGE_SIZE) as typeof area;
      else {
        // Runs of 1-3 adjacent pages, the runs out of order: spans must break between them.
        const base = m.mm.alloc_pages(GFP_KERNEL, 5) as number;
        const runs = [[9, 10, 11], [2], [20, 21], [5, 6], [0], [30, 31, 28], [14], [16, 17], [25]];
        area = m.mm.vmap(runs.flat().map((i) => base + i), 16) as typeof area;
      }
      const bytes = Uint8Array.from({ length: area.size }, (_, i) => (i * 7 + (i >> 12)) & 0xff);
      area.write(0, bytes);
      const adjacent = Array.from(area.pages).filter((p, i, a) => i > 0 && p === (a[i - 1] as number) + 1).length;
      expect(adjacent).toBeGreaterThan(0);
      if (layout !== 'vmalloc') expect(adjacent).toBeLessThan(15);
      fc.assert(fc.property(fc.integer({ min: 0, max: area.size }), fc.integer({ min: 0, max: area.size }), fc.integer({ min: 0, max: 100 }), (a, b, pad) => {
        const [off, end] = a <= b ? [a, b] : [b, a];
        const dst = new Uint8Array(end - off + 2 * pad).fill(0xee);
        area.readInto(off, dst, pad, end - off);
        // Byte arrays compared natively (a deep toEqual of 64 KiB arrays takes seconds).
        expect(Buffer.compare(dst.subarray(pad, pad + end - off), bytes.subarray(off, end))).toBe(0);
        expect(dst.subarray(0, pad).every((x) => x === 0xee)).toBe(true);
        expect(dst.subarray(pad + end - off).every((x) => x === 0xee)).toBe(true);
        expect(Buffer.compare(area.read(off, end - off), bytes.subarray(off, end))).toBe(0);
      }), { numRuns: 150 });
      // Default length: as much as fills the buffer from dstOff.
      const tail = new Uint8Array(PAGE_SIZE + 5);
      area.readInto(3 * PAGE_SIZE - 1, tail, 5);
      expect(Buffer.compare(tail.subarray(5), bytes.subarray(3 * PAGE_SIZE - 1, 4 * PAGE_SIZE - 1))).toBe(0);
    }
  });

  it('refuses bad arguments with EINVAL naming them, and a freed area with EFAULT', () => {
    const m = new Machine({ memory: '256M', swiotlb: false });
    const area = m.mm.vmalloc(2 * PAGE_SIZE) as NonNullable<ReturnType<typeof m.mm.vmalloc>>;
    const dst = new Uint8Array(16);
    expect(() => area.readInto(0, [] as unknown as Uint8Array)).toThrow(/EINVAL.*dst|dst.*EINVAL/);
    expect(() => area.readInto(0, dst, 17)).toThrow(/dstOff/);
    expect(() => area.readInto(0, dst, -1)).toThrow(/dstOff/);
    expect(() => area.readInto(0, dst, 8, 9)).toThrow(/len/);
    expect(() => area.readInto(2 * PAGE_SIZE - 8, dst)).toThrow(/outside the area/);
    m.mm.vfree(area);
    expect(() => area.readInto(0, dst)).toThrow(/EFAULT/);
  });

  it('a CPU read of bytes the device owns is still found when pages are joined into one span', () => {
    // Access checks see each span whole: joining pages must not hide the device's bytes on the
    // span's second page.
    const m = new Machine({ memory: '512M', swiotlb: false, dmaDebug: false });
    const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
    m.pci.bind(dev, { name: 'drv', probe() {} });
    const area = m.mm.vmalloc(4 * PAGE_SIZE) as NonNullable<ReturnType<typeof m.mm.vmalloc>>;
    expect(area.pages[2]).toBe((area.pages[1] as number) + 1);
    const handle = dma_map_page_attrs(dev, area.pages[2] as number, 0, PAGE_SIZE, DMA_FROM_DEVICE, 0);
    expect(dma_mapping_error(dev, handle)).toBe(0);
    area.readInto(PAGE_SIZE, new Uint8Array(2 * PAGE_SIZE));
    const found = m.dma.ledger.findings.list();
    expect(found.map((f) => f.kind)).toEqual(['cpu-access-device-owned']);
  });
});
