/**
 * DMA pools (dma/pool/dmapool.ts) against mm/dmapool.c: creation rules, block layout (ascending,
 * never across a boundary), reuse, the slab-debug poison checks (write after free, double free,
 * bad free), a busy destroy that leaks, dmam pools, the sysfs file; on dma-direct and the IOMMU.
 */
import { describe, expect, it } from 'vitest';
import {
  DMA_BLOCK_SIZE, GFP_KERNEL, LEAK_KINDS, Machine, POOL_POISON_ALLOCATED, dmaFindings, dmaPoolsSysfs, dma_pool_alloc,
  dma_pool_create, dma_pool_destroy, dma_pool_free, dma_pool_zalloc, dmam_pool_create, type Core, type Device, type MachineOptions,
} from '../../../src/index.ts';

function rig(opts: Partial<MachineOptions> = {}) {
  const m = new Machine({ memory: '256M', ...opts });
  const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
  let core: Device<Core> | undefined;
  m.pci.bind(dev, { name: 'nvme', probe(d) { core = d; } });
  return { m, dev, core: core as Device<Core> };
}

const errs = (m: Machine): string[] => m.klog.messages.filter((x) => x.level === 'err').map((x) => x.message);
/** The bytes of a pool block as the CPU sees them (through the direct map). */
function cpuBytes(m: Machine, vaddr: number, n: number): number[] {
  const area = m.mm.findVmArea(vaddr);
  const phys = area === undefined ? m.mm.virt_to_phys(vaddr) : area.physOf(vaddr - area.addr);
  return [...m.mm.readPhys(phys, n)];
}

describe('dma_pool_create', () => {
  it('refuses what the kernel refuses with null: align not a power of two, size 0 or > INT_MAX, a bad boundary', () => {
    const { dev } = rig();
    expect(dma_pool_create('a', dev, 64, 3, 0)).toBeNull();
    expect(dma_pool_create('a', dev, 0, 8, 0)).toBeNull();
    expect(dma_pool_create('a', dev, 2 ** 31, 8, 0)).toBeNull();
    expect(dma_pool_create('a', dev, 64, 8, 32)).toBeNull();      // boundary below the size
    expect(dma_pool_create('a', dev, 64, 8, 3000)).toBeNull();    // not a power of two
    expect(dma_pool_create('a', null as never, 64, 8, 0)).toBeNull();
  });

  it('grows the size to a block header and to the alignment; allocation and boundary as the kernel sets them', () => {
    const { dev } = rig();
    const tiny = dma_pool_create('tiny', dev, 4, 0, 0)!;
    expect([tiny.size, tiny.allocation, tiny.boundary]).toEqual([DMA_BLOCK_SIZE, 4096, 4096]);
    const odd = dma_pool_create('odd', dev, 100, 64, 1 << 20)!;
    expect([odd.size, odd.allocation, odd.boundary]).toEqual([128, 4096, 4096]); // boundary capped at the allocation
    const big = dma_pool_create('big', dev, 10000, 8, 0)!;
    expect([big.size, big.allocation]).toEqual([10000, 10000]);
    expect(dma_pool_create('a name longer than thirty-one characters', dev, 64, 8, 0)!.name).toBe('a name longer than thirty-one c');
    expect(dev.dma_pools?.map((p) => p.name)[0]).toBe('a name longer than thirty-one c'); // newest first
  });
});

for (const [backend, opts] of [['dma-direct', {}], ['IOMMU strict', { iommu: { mode: 'strict' } }]] as const) {
  describe(`dma_pool_alloc / dma_pool_free on ${backend}`, () => {
    it('hands out blocks low to high from one coherent page, then a new page; a freed block comes back first', () => {
      const { dev } = rig(opts);
      const pool = dma_pool_create('desc', dev, 64, 64, 0)!;
      const blocks = Array.from({ length: 64 }, () => dma_pool_alloc(pool, GFP_KERNEL)!);
      const base = blocks[0]!.dma;
      expect(blocks.map((b) => b.dma - base)).toEqual(Array.from({ length: 64 }, (_, i) => i * 64));
      expect(pool.pages.length).toBe(1);
      const next = dma_pool_alloc(pool, GFP_KERNEL)!;
      expect(pool.pages.length).toBe(2);
      expect(next.dma < base || next.dma >= base + 4096).toBe(true);
      dma_pool_free(pool, blocks[5]!.vaddr, blocks[5]!.dma);
      expect(dma_pool_alloc(pool, GFP_KERNEL)!.dma).toBe(blocks[5]!.dma);
      expect([pool.nrActive, pool.nrBlocks]).toEqual([65, 128]);
    });

    it('no block crosses the boundary: the carving skips to it', () => {
      const { dev } = rig(opts);
      const pool = dma_pool_create('prp', dev, 96, 32, 1024)!;
      const blocks = Array.from({ length: 40 }, () => dma_pool_alloc(pool, GFP_KERNEL)!);
      expect(pool.pages.length).toBe(1); // 10 blocks per 1 KiB, 40 per page
      for (const b of blocks) expect(Math.floor(b.dma / 1024)).toBe(Math.floor((b.dma + 95) / 1024));
      expect(blocks[10]!.dma - blocks[0]!.dma).toBe(1024);
    });

    it('the device reaches a block at its handle; the CPU sees it at its address', () => {
      const { m, dev } = rig(opts);
      const pool = dma_pool_create('desc', dev, 64, 64, 0)!;
      const b = dma_pool_zalloc(pool, GFP_KERNEL)!;
      expect(cpuBytes(m, b.vaddr, 4)).toEqual([0, 0, 0, 0]);
      expect(dev.dma.write(b.dma + 1, new Uint8Array([7])).ok).toBe(true);
      expect(cpuBytes(m, b.vaddr, 2)).toEqual([0, 7]);
      const poisoned = dma_pool_alloc(pool, GFP_KERNEL)!;
      expect(cpuBytes(m, poisoned.vaddr, 3)).toEqual([POOL_POISON_ALLOCATED, POOL_POISON_ALLOCATED, POOL_POISON_ALLOCATED]);
      expect(dmaFindings(m)).toEqual([]);
    });
  });
}

describe('slab-debug checks (DMAPOOL_DEBUG)', () => {
  it('a write to a freed block is reported when the block is handed out again; a clean reuse is not', () => {
    const { m, dev } = rig();
    const pool = dma_pool_create('desc', dev, 64, 64, 0)!;
    const a = dma_pool_alloc(pool, GFP_KERNEL)!;
    dma_pool_free(pool, a.vaddr, a.dma);
    expect(dma_pool_alloc(pool, GFP_KERNEL)!.dma).toBe(a.dma);
    expect(errs(m)).toEqual([]);
    dma_pool_free(pool, a.vaddr, a.dma);
    dev.dma.write(a.dma + 40, new Uint8Array([1])); // the planted bug: the device writes after free
    dma_pool_alloc(pool, GFP_KERNEL);
    expect(errs(m)).toEqual([`nvme 0000:01:00.0: pool_check_block desc, 0x${a.vaddr.toString(16)} (corrupted)\n`]);
  });

  it('a double free and a free of a foreign address are reported and change nothing', () => {
    const { m, dev } = rig();
    const pool = dma_pool_create('desc', dev, 64, 64, 0)!;
    const a = dma_pool_alloc(pool, GFP_KERNEL)!;
    dma_pool_free(pool, a.vaddr, a.dma);
    dma_pool_free(pool, a.vaddr, a.dma);
    dma_pool_free(pool, 0x1234, 0x10000000);
    expect(errs(m)).toEqual([
      `nvme 0000:01:00.0: pool_block_err desc, dma 0x${a.dma.toString(16)} already free\n`,
      'nvme 0000:01:00.0: pool_block_err desc, 0x1234/0x10000000 (bad dma)\n',
    ]);
    expect(pool.nrActive).toBe(0);
  });
});

describe('dma_pool_destroy and dmam_pool_create', () => {
  it('destroying an idle pool frees its pages; the ledger is clean', () => {
    const { m, dev } = rig();
    const free = m.mm.freePages;
    const pool = dma_pool_create('desc', dev, 64, 64, 0)!;
    const a = dma_pool_alloc(pool, GFP_KERNEL)!;
    dma_pool_free(pool, a.vaddr, a.dma);
    dma_pool_destroy(pool);
    dma_pool_destroy(null);
    expect(m.mm.freePages).toBe(free);
    expect(dev.dma_pools).toEqual([]);
    m.pci.unbind(dev);
    expect(dmaFindings(m, { kinds: LEAK_KINDS })).toEqual([]);
  });

  it('destroying a busy pool reports it and leaks its pages: the ledger names the pool at unbind', () => {
    const { m, dev } = rig();
    const pool = dma_pool_create('prp list page', dev, 4096, 4096, 0)!;
    dma_pool_alloc(pool, GFP_KERNEL);
    dma_pool_destroy(pool);
    expect(errs(m)).toEqual(['nvme 0000:01:00.0: dma_pool_destroy prp list page busy\n']);
    m.pci.unbind(dev);
    const leaks = dmaFindings(m, { kinds: LEAK_KINDS });
    expect(leaks.map((f) => f.kind)).toEqual(['leaked-coherent']);
    expect(leaks[0]?.message).toContain('dma_pool_alloc(prp list page)');
  });

  it('a pool never destroyed is a leak at unbind; a dmam pool is destroyed by unbind', () => {
    const forgetful = rig();
    dma_pool_alloc(dma_pool_create('desc', forgetful.dev, 64, 64, 0)!, GFP_KERNEL);
    forgetful.m.pci.unbind(forgetful.dev);
    expect(dmaFindings(forgetful.m, { kinds: LEAK_KINDS }).map((f) => f.kind)).toEqual(['leaked-coherent']);
    const managed = rig();
    const pool = dmam_pool_create('desc', managed.core, 64, 64, 0)!;
    const b = dma_pool_alloc(pool, GFP_KERNEL)!;
    dma_pool_free(pool, b.vaddr, b.dma);
    managed.m.pci.unbind(managed.dev);
    expect(pool.destroyed).toBe(true);
    expect(dmaFindings(managed.m, { kinds: LEAK_KINDS })).toEqual([]);
  });

  it('the pools sysfs file lists each pool: name, blocks in use, blocks, size, pages', () => {
    const { dev } = rig();
    expect(dmaPoolsSysfs(dev)).toBe('');
    const pool = dma_pool_create('prp list 256', dev, 256, 256, 0)!;
    dma_pool_alloc(pool, GFP_KERNEL);
    expect(dmaPoolsSysfs(dev)).toBe('poolinfo - 0.1\nprp list 256        1   16  256  1\n');
  });
});
