/**
 * The incremental page audit (issue 20): auditMmSince looks only at the pages whose metadata or
 * buddy blocks changed since a sound base, and must say what the full auditMm says. Each planted
 * corruption (a lost page, a free block over an allocated page, a page in two free blocks, an
 * allocated page with no owner, a counter that drifted) fires in both; a clean workload passes both;
 * and Machine.audit({ since }) uses it only for a snapshot that audited clean.
 */
import { describe, expect, it } from 'vitest';
import { EINVAL, GFP_KERNEL, KernelError, Machine, auditMm } from '../../src/index.ts';
import { auditMmSince, mmAuditBase } from '../../src/mm/audit.ts';
import { testMachine } from '../../src/testing/index.ts';

const sorted = (a: string[]) => [...a].sort();

function based(opts: ConstructorParameters<typeof Machine>[0] = { memory: '1G' }, setup: (m: Machine) => void = () => {}) {
  const m = new Machine(opts);
  setup(m);
  m.snapshot();
  const base = mmAuditBase(m.mm);
  if (base === null) throw new Error('no base');
  expect(auditMm(m.mm)).toEqual([]);
  return { m, mm: m.mm, base };
}

describe('auditMmSince', () => {
  it('passes a clean workload and agrees with auditMm', () => {
    for (const opts of [{ memory: '1G' }, { memory: '4G', fragment: { level: 0.5 } }, { memory: [{ start: 0, size: '1G' }, { start: '8G', size: '1G' }] }]) {
      const { mm, base } = based(opts as never);
      const held: number[] = [];
      for (let i = 0; i < 200; i++) {
        const order = i % 4;
        const p = mm.alloc_pages(GFP_KERNEL, order);
        if (p !== null) held.push(p, order);
        const v = mm.kmalloc(64 + i * 13);
        if (i % 3 === 0 && v !== null) mm.kfree(v);
      }
      const area = mm.vmalloc(300 * 4096);
      for (let i = 0; i < held.length; i += 4) mm.__free_pages(held[i] as number, held[i + 1] as number);
      if (area !== null) mm.vfree(area);
      expect(auditMmSince(mm, base)).toEqual([]);
      expect(auditMm(mm)).toEqual([]);
    }
  });

  it('pages allocated at the base and all freed since: their chunk is clean and the count follows', () => {
    let held: number[] = [];
    const { mm, base } = based(undefined, (m) => {
      // A whole 1,024-page chunk allocated at the base (an order-10 block is one chunk).
      held = [m.mm.alloc_pages(GFP_KERNEL, 10) as number, m.mm.alloc_pages(GFP_KERNEL, 3) as number];
    });
    mm.__free_pages(held[0] as number, 10);
    mm.__free_pages(held[1] as number, 3);
    expect(auditMm(mm)).toEqual([]);
    expect(auditMmSince(mm, base)).toEqual([]);
    // The same with a counter that drifted: both see the same wrong count.
    mm.adjustAllocated(1);
    const full = auditMm(mm);
    expect(full.some((v) => v.includes('pages are marked allocated, the counter says'))).toBe(true);
    expect(sorted(auditMmSince(mm, base))).toEqual(sorted(full));
    mm.adjustAllocated(-1);
  });

  it('a page freed in the metadata but never given back to the buddy allocator: lost', () => {
    const { mm, base } = based();
    const pfn = mm.alloc_pages(GFP_KERNEL, 0) as number;
    mm.meta.markFree(pfn, 0);
    const full = auditMm(mm);
    expect(full.some((v) => v.includes(`pfn 0x${pfn.toString(16)} is neither free nor allocated (lost)`))).toBe(true);
    expect(sorted(auditMmSince(mm, base))).toEqual(sorted(full));
  });

  it('a free block over an allocated page (a buddy change alone)', () => {
    let pfn = 0;
    // Allocated before the base: only the buddy allocator changes after it.
    const { mm, base } = based(undefined, (m) => { pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number; });
    const zone = mm.zones.find((z) => pfn >= z.span.startPfn && pfn < z.span.endPfn);
    zone?.give(pfn, 0);
    const full = auditMm(mm);
    expect(full).toContain(`pfn 0x${pfn.toString(16)} is free in the buddy allocator but marked allocated`);
    expect(sorted(auditMmSince(mm, base))).toEqual(sorted(full));
  });

  it('a page in two free blocks', () => {
    const { mm, base } = based();
    // A page inside a free max-order block, handed to the buddy allocator again as order 0.
    const zone = mm.zones.find((z) => z.freePages > 0);
    const [blockPfn] = zone?.blocks().next().value as [number, number];
    zone?.give(blockPfn + 3, 0);
    const full = auditMm(mm);
    expect(full).toContain(`pfn 0x${(blockPfn + 3).toString(16)} is in two free blocks`);
    expect(sorted(auditMmSince(mm, base))).toEqual(sorted(full));
  });

  it('an allocated page with no owner, and an allocated-page counter that drifted', () => {
    const { mm, base } = based();
    const pfn = mm.alloc_pages(GFP_KERNEL, 1) as number;
    mm.meta.fill(mm.meta.owner, 0, pfn, pfn + 1);
    const full = auditMm(mm);
    expect(full).toContain('1 allocated pages have no owner');
    expect(sorted(auditMmSince(mm, base))).toEqual(sorted(full));
    // Inside a block of four allocated pages (the audits read those four at a time).
    const quad = mm.alloc_pages(GFP_KERNEL, 2) as number;
    mm.meta.fill(mm.meta.owner, 0, quad + 2, quad + 3);
    const full4 = auditMm(mm);
    expect(full4).toContain('2 allocated pages have no owner');
    expect(sorted(auditMmSince(mm, base))).toEqual(sorted(full4));
    const { mm: mm2, base: base2 } = based();
    const p2 = mm2.alloc_pages(GFP_KERNEL, 0) as number;
    mm2.meta.markAllocated(p2 + 1, 0, 1);
    const full2 = auditMm(mm2);
    expect(full2.some((v) => v.includes('pages are marked allocated, the counter says'))).toBe(true);
    expect(sorted(auditMmSince(mm2, base2))).toEqual(sorted(full2));
  });

  it('buddy counters out of step with the bitmaps, more than 20 problems, a page in three blocks: the same lines', () => {
    const zoneOf = (mm: Machine['mm'], pfn: number) => mm.zones.find((z) => pfn >= z.span.startPfn && pfn < z.span.endPfn);
    const cases: Array<[string, (mm: Machine['mm']) => void]> = [
      // A free order-0 block handed over again: its bit was set already, the counter moves.
      ['double give', (mm) => { mm.alloc_pages(GFP_KERNEL, 0); const b = mm.alloc_pages(GFP_KERNEL, 0) as number; mm.__free_pages(b, 0); zoneOf(mm, b)?.give(b, 0); }],
      // A free block taken out twice: the second clear of a clear bit.
      ['double remove', (mm) => { const a = mm.alloc_pages(GFP_KERNEL, 0) as number; const z = zoneOf(mm, a); const [p, o] = z?.freeBlockOf(a + 1) as [number, number]; z?.remove(p, o); z?.remove(p, o); }],
      // An allocated order-5 block in the free lists: 32 lines, past the 20 where auditMm stops listing lost pages.
      ['32 pages free and allocated', (mm) => { const p = mm.alloc_pages(GFP_KERNEL, 5) as number; zoneOf(mm, p)?.give(p, 5); }],
      ['a page in three free blocks', (mm) => {
        const z = mm.zones.find((x) => (x.nrFree[10] as number) > 0);
        let blk = -1;
        for (const [pfn, o] of z?.blocks() ?? []) if (o === 10) { blk = pfn; break; }
        z?.give(blk + 4, 1);
        z?.give(blk + 5, 0);
      }],
    ];
    for (const [what, plant] of cases) {
      const { mm, base } = based();
      plant(mm);
      const full = auditMm(mm);
      expect(full.length, what).toBeGreaterThan(0);
      expect(sorted(auditMmSince(mm, base)), what).toEqual(sorted(full));
    }
  });

  it('bad arguments are EINVAL naming them', () => {
    const { base } = based();
    expect(() => auditMmSince({} as never, base)).toThrow(/mm/);
    expect(() => mmAuditBase(null as never)).toThrow(KernelError);
    for (const bad of [null, {}, { mm: 1, capture: {} }]) expect(() => auditMmSince(base.mm, bad as never)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'base' }) as Error);
    // A base taken of another machine's memory is bad input too.
    const other = based().m;
    expect(() => auditMmSince(other.mm, base)).toThrow(/another machine/);
  });
});

describe('Machine.audit({ since })', () => {
  it('audits only changes after a clean snapshot({ audit: true }); the same violations as the full audit', () => {
    const { machine: m } = testMachine({ iommu: { mode: 'lazy' } });
    const snap = m.snapshot({ audit: true });
    expect(snap.auditBase).not.toBeNull();
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    expect(m.audit({ since: snap })).toEqual([]);
    m.mm.meta.markFree(pfn, 0);
    expect(sorted(m.audit({ since: snap }).map((v) => v.message))).toEqual(sorted(m.audit().map((v) => v.message)));
    expect(m.audit({ since: snap }).length).toBeGreaterThan(0);
    // After a restore the base holds again.
    m.restore(snap);
    expect(m.audit({ since: snap })).toEqual([]);
  });

  it('a snapshot without audit, or of an unsound machine, gives the full audit', () => {
    const { machine: m } = testMachine();
    const plain = m.snapshot();
    expect(plain.auditBase).toBeNull();
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    m.mm.meta.markFree(pfn, 0);
    const broken = m.snapshot({ audit: true });
    expect(broken.auditBase).toBeNull();
    expect(m.audit({ since: broken })).toEqual(m.audit());
    expect(m.audit({ since: plain })).toEqual(m.audit());
  });

  it('refuses a snapshot of another machine and bad options (EINVAL)', () => {
    const { machine: a } = testMachine();
    const { machine: b } = testMachine();
    const snap = b.snapshot({ audit: true });
    const err = (f: () => unknown) => { try { f(); } catch (e) { return e; } return undefined; };
    const e1 = err(() => a.audit({ since: snap })) as KernelError;
    expect(e1).toBeInstanceOf(KernelError);
    expect(e1.errno).toBe(EINVAL);
    expect(e1.message).toMatch(/opts\.since/);
    expect(() => a.audit({ since: {} as never })).toThrow(/opts\.since/);
    expect(() => a.audit(null as never)).toThrow(/opts/);
    expect(() => a.snapshot({ audit: 'yes' as never })).toThrow(/opts\.audit/);
    expect(e1.message).toContain(`machine ${b.name}, not ${a.name}`);
    // A misspelt option is refused, not ignored.
    expect(() => a.snapshot({ adit: true } as never)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'opts.adit' }) as Error);
    expect(() => a.audit({ sinse: snap } as never)).toThrow(expect.objectContaining({ errno: EINVAL, arg: 'opts.sinse' }) as Error);
  });
});
