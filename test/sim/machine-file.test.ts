/**
 * Machine files and machine options (issue 16): the schema refuses each kind of bad field with its
 * JSON path; every preset and a full file pass; the library refuses the same mistakes itself; the
 * CLI's describe shows what defines a machine and exits 2 on a bad file.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  DMA_BIT_MASK, EINVAL, KernelError, MACHINE_SCHEMA, Machine, PRESETS, buildMachine, describeMachine, dma_set_mask,
  dma_set_coherent_mask, parseMachineConfig, preset,
} from '../../src/index.ts';

function refused(fn: () => unknown): KernelError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(KernelError);
    expect((e as KernelError).errno).toBe(EINVAL);
    return e as KernelError;
  }
  throw new Error('expected a KernelError');
}

describe('parseMachineConfig: the schema', () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['a misspelt key', { memroy: '1G' }, 'memory', /memory: missing \(required\); memroy: unknown key "memroy"/],
    ['a size as a string where a number is needed', { memory: '1G', devices: [{ name: 'a', maxSegmentSize: '64K' }] }, 'devices[0].maxSegmentSize', /expected a whole number, got "64K"/],
    ['an unreadable size', { memory: '12 gigs' }, 'memory', /a size string such as '16G'/],
    ['a bad enum', { memory: '1G', iommu: { mode: 'lazzy' } }, 'iommu.mode', /one of "lazy", "strict", "passthrough", got "lazzy"/],
    ['true where false or options go', { memory: '1G', iommu: true }, 'iommu', /expected false or an object, got true/],
    ['an unknown key in a RAM range', { memory: [{ start: 0, size: '1G', end: 5 }] }, 'memory[0].end', /unknown key "end"/],
    ['a device without a name', { memory: '1G', devices: [{ dmaMask: 64 }] }, 'devices[0].name', /missing \(required\)/],
    ['a mask too wide', { memory: '1G', devices: [{ name: 'a', dmaMask: 65 }] }, 'devices[0].dmaMask', /at most 64, got 65/],
    ['a string boolean', { memory: '1G', swiotlb: { force: 'yes' } }, 'swiotlb.force', /expected a boolean, got "yes"/],
    ['not an object', [], 'machine', /expected an object/],
  ];
  for (const [what, json, path, message] of cases) {
    it(`refuses ${what}, naming ${path}`, () => {
      const e = refused(() => parseMachineConfig(json, 'm.json'));
      expect(e.fn).toBe('m.json');
      expect(e.arg).toBe(path);
      expect(e.message).toMatch(message);
    });
  }

  it('accepts every preset and a file using every option, and drops "$schema"', () => {
    for (const [name, cfg] of Object.entries(PRESETS)) expect(() => parseMachineConfig(JSON.parse(JSON.stringify(cfg)) as unknown), name).not.toThrow();
    const full = {
      $schema: './machine.schema.json', memory: [{ start: 0, size: '3G' }, { start: '4G', size: '2G' }], seed: 7, name: 'box', cpus: 4,
      lowReserve: '1M', arch: 'arm64', trace: true, accessChecks: false, fragment: { run: [1, 8], gap: [1, 2], seed: 3 },
      swiotlb: { size: '32M', force: true, areas: 2 }, iommu: { mode: 'strict', addressWidth: 48, granule: 4096, iotlbSize: 64, singleQueue: false, faultLogSize: 16, forcedac: true },
      dmaDebug: { entries: 1024, driverFilter: 'nvme' },
      devices: [{ name: 'nvme', bus: 'pci', dmaMask: 64, coherentDmaMask: 64, busDmaLimit: 0, maxSegmentSize: 0xffffffff, segmentBoundaryMask: 0xffffffff, minAlignMask: 0xfff, hasDmaParms: true, coherent: true, untrusted: false, iommu: true, iommuGroup: 3 }],
    };
    const config = parseMachineConfig(full);
    expect('$schema' in config).toBe(false);
    const { machine, devices } = buildMachine(config);
    expect(machine.name).toBe('box');
    expect(devices['nvme']?.dma_parms?.min_align_mask).toBe(0xfff);
  });

  it('is the published schema: draft-07, unknown keys refused at every level', () => {
    expect(MACHINE_SCHEMA.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(MACHINE_SCHEMA.additionalProperties).toBe(false);
    expect(MACHINE_SCHEMA.properties.devices.items.additionalProperties).toBe(false);
  });
});

describe('the library refuses the same mistakes (TypeScript callers too)', () => {
  it('Machine: an unknown option, a bad swiotlb or iommu shape, a bad scalar', () => {
    expect(refused(() => new Machine({ memory: '64M', memroy: '1G' } as never)).arg).toBe('memroy');
    expect(refused(() => new Machine({ memory: '64M', swiotlb: { force: 'yes' } } as never)).arg).toBe('swiotlb.force');
    expect(refused(() => new Machine({ memory: '64M', swiotlb: { sise: '4M' } } as never)).arg).toBe('swiotlb.sise');
    expect(refused(() => new Machine({ memory: '64M', iommu: { mdoe: 'strict' } } as never)).arg).toBe('iommu.mdoe');
    expect(refused(() => new Machine({ memory: '64M', iommu: { format: 'amd-v' as never } })).arg).toBe('format');
    expect(refused(() => new Machine({ memory: '64M', iommu: { format: 'vtd', addressWidth: 57 } })).arg).toBe('addressWidth');
    expect(refused(() => new Machine({ memory: '64M', iommu: { format: 'vtd', granule: 16384 } })).arg).toBe('granule');
    expect(refused(() => new Machine({ memory: '64M', cpus: 0 })).arg).toBe('cpus');
    expect(refused(() => new Machine({ memory: '64M', arch: 'riscv' as never })).arg).toBe('arch');
    expect(new Machine({ memory: '64M', swiotlb: { size: '4M', force: true }, iommu: false }).swiotlbForce).toBe(true);
  });

  it('Bus.addDevice: a string segment size, a fraction, an unknown key; nothing is added', () => {
    const m = new Machine({ memory: '64M' });
    expect(refused(() => m.pci.addDevice({ name: 'a', maxSegmentSize: '64K' as never })).arg).toBe('maxSegmentSize');
    expect(refused(() => m.pci.addDevice({ name: 'a', minAlignMask: 0.5 })).arg).toBe('minAlignMask');
    expect(refused(() => m.pci.addDevice({ name: 'a', untrusted: 'no' as never })).arg).toBe('untrusted');
    expect(refused(() => m.pci.addDevice({ name: 'a', dmamask: 64 } as never)).arg).toBe('dmamask');
    expect(m.pci.devices.size).toBe(0);
    expect(m.pci.addDevice({ name: 'a', maxSegmentSize: 65536 }).dma_parms?.max_segment_size).toBe(65536);
  });
});

describe('zones as the arch has them, and dma_supported', () => {
  it('arm64: ZONE_DMA is the first 4 GiB and ZONE_DMA32 empty; x86: 16 MiB and DMA32 to 4 GiB', () => {
    const arm = buildMachine(preset('embedded-32bit')).machine;
    expect(arm.mm.zones.map((z) => [z.span.name, z.span.endPfn * 4096, z.span.presentPages > 0])).toEqual([
      ['DMA', 2 ** 32, true], ['DMA32', 2 ** 32, false], ['Normal', 6 * 2 ** 30, true],
    ]);
    const x86 = new Machine({ memory: '6G' });
    expect(x86.mm.zones.map((z) => z.span.endPfn * 4096)).toEqual([2 ** 24, 2 ** 32, 6 * 2 ** 30]);
  });

  it('dma-direct supports a mask below 32 bits only if it covers ZONE_DMA (or all of RAM); dma-iommu supports any', () => {
    const x86 = new Machine({ memory: '6G' });
    const arm = new Machine({ memory: '6G', arch: 'arm64' });
    const small = new Machine({ memory: '8M', lowReserve: '64K' });
    const iommu = new Machine({ memory: '6G', iommu: { mode: 'strict' } });
    const dev = (m: Machine) => m.pci.addDevice({ name: 'd', dmaMask: 64 });
    expect(dma_set_mask(dev(x86), DMA_BIT_MASK(30))).toBe(0);       // covers x86's 16 MiB ZONE_DMA
    expect(dma_set_mask(dev(arm), DMA_BIT_MASK(30))).toBe(-5);      // arm64's ZONE_DMA is 4 GiB: -EIO
    expect(dma_set_coherent_mask(arm.pci.devices.get('d')!, DMA_BIT_MASK(32))).toBe(0);
    expect(dma_set_mask(dev(small), DMA_BIT_MASK(23))).toBe(0);     // reaches the last page of 8 MiB RAM
    expect(dma_set_mask(x86.pci.devices.get('d')!, DMA_BIT_MASK(20))).toBe(-5);
    expect(dma_set_mask(dev(iommu), DMA_BIT_MASK(20))).toBe(0);     // dma-iommu: any mask
  });
});

describe('describeMachine and dmasim describe', () => {
  it('shows the IOMMU mode and width, swiotlb force, the arch and its zones', () => {
    const cvm = describeMachine(buildMachine(preset('confidential-vm')).machine);
    expect(cvm).toMatch(/^machine m\d+: x86_64, 8 GiB RAM, 2 CPUs, seed 1/);
    expect(cvm).toMatch(/swiotlb: 64 MiB at \[0xfc000000, 0x100000000\), 32768 slots in \d+ areas, force \(every streaming mapping bounces\)/);
    const laptop = describeMachine(buildMachine(preset('laptop-nvme-vtd')).machine);
    expect(laptop).toContain('iommu: lazy (default domain DMA-FQ), vtd page tables, 39-bit input and 52-bit output addresses, granule 4 KiB');
    expect(describeMachine(new Machine({ memory: '1G', iommu: { mode: 'strict', format: 'vtd' } }))).toContain('iommu: strict (default domain DMA), vtd page tables, 48-bit');
    expect(laptop).toMatch(/pci 0000:05:00\.0: .*untrusted, iommu group 1 \(DMA\)/);
    const arm = describeMachine(buildMachine(preset('embedded-32bit')).machine);
    expect(arm).toMatch(/arm64, 6 GiB RAM/);
    expect(arm).toMatch(/zone DMA {5}\[0x0, 0x100000000\)/);
    expect(arm).toMatch(/zone DMA32 {3}empty/);
    expect(arm).toContain('non-coherent');
    // A stored 0 is the kernel's "unset": shown as the value the DMA API uses.
    const zero = new Machine({ memory: '64M' });
    zero.pci.addDevice({ name: 'z', maxSegmentSize: 0, segmentBoundaryMask: 0 });
    expect(describeMachine(zero)).toContain('max segment 65536 (unset: 0 stored), segment boundary 0xffffffffffffffff (unset: 0 stored)');
  });

  it('dmasim describe: a bad file exits 2 naming the field; a machine that cannot be built exits 2; no stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dmasim-describe-'));
    const run = (...args: string[]) => spawnSync(process.execPath, ['bin/dmasim.mjs', 'describe', ...args], { encoding: 'utf8' });
    writeFileSync(join(dir, 'typo.json'), JSON.stringify({ memory: '1G', iommu: { mode: 'strict', adressWidth: 48 } }));
    const typo = run(join(dir, 'typo.json'));
    expect(typo.status).toBe(2);
    expect(typo.stderr).toContain('iommu.adressWidth: unknown key "adressWidth"');
    writeFileSync(join(dir, 'dup.json'), JSON.stringify({ memory: '1G', devices: [{ name: 'a' }, { name: 'a' }] }));
    const dup = run(join(dir, 'dup.json'));
    expect(dup.status).toBe(2);
    expect(dup.stderr).toMatch(/^dmasim: Bus\.addDevice: name: pci already has a device a \(-EINVAL\)/);
    expect(dup.stderr).not.toMatch(/\n\s+at /);
    expect(run().status).toBe(2);
    expect(run('--bogus').stderr).toContain('usage: dmasim describe');
  }, 30_000);
});

describe('sizes', () => {
  it("'iB' only after a unit: '16iB' is refused by the schema and by parseSize; '16KiB', '16K', '16B' read", async () => {
    const { parseSize } = await import('../../src/index.ts');
    expect(refused(() => parseMachineConfig({ memory: '16iB' })).arg).toBe('memory');
    expect(refused(() => parseSize('16iB'))).toBeInstanceOf(KernelError);
    expect([parseSize('16KiB'), parseSize('16K'), parseSize('16B'), parseSize('1.5M')]).toEqual([16384, 16384, 16, 1572864]);
  });

  it('findings of several lines keep their later lines indented under the first', async () => {
    const { formatFindings } = await import('../../src/index.ts');
    expect(formatFindings([{ kind: 'dma-debug', device: 'd', message: 'first\nsecond' }])).toBe('  [dma-debug] first\n    second');
  });
});
