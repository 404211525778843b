import { describe, expect, it } from 'vitest';
import { GFP_KERNEL, Machine } from '../../src/index.ts';

describe('machine.audit()', () => {
  it('is clean on a fresh, a fragmented and a busy machine', () => {
    expect(new Machine({ memory: '256M' }).audit()).toEqual([]);
    const m = new Machine({ memory: '8G', fragment: { run: [1, 8] } });
    const a = m.mm.vmalloc(5 * 2 ** 20);
    m.mm.alloc_pages(GFP_KERNEL, 3);
    m.mm.kmalloc(100);
    expect(m.audit()).toEqual([]);
    m.mm.vfree(a);
    expect(m.audit()).toEqual([]);
  });

  it('finds a page lost by corrupted metadata, and devres left on an unbound device', () => {
    const m = new Machine({ memory: '64M' });
    const pfn = m.mm.alloc_pages(GFP_KERNEL, 0) as number;
    m.mm.meta.state[pfn] = 0; // the page is now neither allocated nor free
    const v = m.audit();
    expect(v.some((x) => x.check === 'mm' && /lost/.test(x.message))).toBe(true);
    const dev = m.pci.addDevice({ name: 'd' });
    dev.devres.add({ name: 'leftover', release: () => {} });
    expect(m.audit().some((x) => x.check === 'devres' && /leftover/.test(x.message))).toBe(true);
  });
});
