import { describe, expect, expectTypeOf, it } from 'vitest';
import { Devres, EBUSY, ENODEV, EINVAL, KernelError, Machine, Revocable, type Bound, type Core, type Device } from '../../src/index.ts';

const machine = () => new Machine({ memory: '64M' });

describe('bind and unbind', () => {
  it('unbind runs remove, then devres newest first, then clears the driver, then notifies', () => {
    const m = machine();
    const log: string[] = [];
    const dev = m.pci.addDevice({ name: '0000:01:00.0' });
    (m.pci.host as { notifyUnbound?: (d: Device) => void }).notifyUnbound = (d) => log.push(`unbound driver=${d.driver === null ? 'null' : 'set'}`);
    expect(m.pci.bind(dev, {
      name: 'demo',
      probe(d) {
        d.devres.add({ name: 'a', release: () => log.push('release a') });
        d.devres.add({ name: 'b', release: () => log.push(`release b bound=${d.isBound}`) });
      },
      remove() { log.push('remove'); },
    })).toBe(0);
    expect(dev.isBound).toBe(true);
    m.pci.unbind(dev);
    expect(log).toEqual(['remove', 'release b bound=true', 'release a', 'unbound driver=null']);
    expect(dev.isBound).toBe(false);
    m.pci.unbind(dev); // nothing
  });

  it('a failing probe releases what it registered and reports the error', () => {
    const m = machine();
    const dev = m.pci.addDevice({ name: 'd' });
    const released: string[] = [];
    expect(m.pci.bind(dev, { name: 'bad', probe(d) { d.devres.add({ name: 'x', release: () => released.push('x') }); return -ENODEV; } })).toBe(-ENODEV);
    expect(released).toEqual(['x']);
    expect(dev.isBound).toBe(false);
    expect(m.pci.bind(dev, { name: 'throws', probe() { throw new KernelError(EINVAL, 'probe', 'nope'); } })).toBe(-EINVAL);
    expect(m.klog.messages.at(-1)?.message).toMatch(/probe with driver throws failed with error -22/);
  });

  it('binding a bound device is -EBUSY', () => {
    const m = machine();
    const dev = m.pci.addDevice({ name: 'd' });
    expect(m.pci.bind(dev, { name: 'a', probe() {} })).toBe(0);
    expect(m.pci.bind(dev, { name: 'b', probe() {} })).toBe(-EBUSY);
  });

  it('refuses duplicate devices and bad masks', () => {
    const m = machine();
    m.pci.addDevice({ name: 'd' });
    expect(() => m.pci.addDevice({ name: 'd' })).toThrow(/already has/);
    expect(() => m.pci.addDevice({ name: 'e', dmaMask: 65 })).toThrow(/dmaMask/);
  });
});

describe('type-states', () => {
  it('Device<Core> is usable as Device<Bound>; Device<Normal> is not', () => {
    expectTypeOf<Device<Core>>().toMatchTypeOf<Device<Bound>>();
    expectTypeOf<Device<Bound>>().toMatchTypeOf<Device>();
    expectTypeOf<Device>().not.toMatchTypeOf<Device<Bound>>();
    const m = machine();
    const dev = m.pci.addDevice({ name: 'd' });
    // @ts-expect-error an unbound (Normal) device cannot be used where Device<Bound> is needed
    expect(() => new Devres(dev, 1, () => {})).toThrow(KernelError);
    try {
      dev.asBound();
    } catch (e) {
      expect((e as KernelError).errno).toBe(ENODEV);
    }
  });
});

describe('Devres and Revocable', () => {
  function boundDevice() {
    const m = machine();
    const dev = m.pci.addDevice({ name: 'd' });
    let core: Device<Core> | undefined;
    m.pci.bind(dev, { name: 'drv', probe(d) { core = d; } });
    return { m, dev, core: core as Device<Core> };
  }

  it('unbind first: teardown once; tryAccess undefined; dispose after does nothing more', () => {
    const { m, dev, core } = boundDevice();
    let teardowns = 0;
    const res = new Devres(core, { v: 1 }, () => { teardowns++; });
    expect(res.access(core).v).toBe(1);
    m.pci.unbind(dev);
    expect(teardowns).toBe(1);
    expect(res.tryAccess()).toBeUndefined();
    res.dispose();
    expect(teardowns).toBe(1);
  });

  it('dispose first: teardown once; the action leaves the devres list; unbind does nothing more', () => {
    const { m, dev, core } = boundDevice();
    let teardowns = 0;
    const res = new Devres(core, 5, () => { teardowns++; });
    expect(dev.devres.size).toBe(1);
    res[Symbol.dispose]();
    expect(teardowns).toBe(1);
    expect(dev.devres.size).toBe(0);
    m.pci.unbind(dev);
    expect(teardowns).toBe(1);
  });

  it('dispose arriving while unbind is revoking waits for the teardown to finish (the concurrent-revokers fix)', () => {
    const { m, dev, core } = boundDevice();
    const order: string[] = [];
    let res: Devres<string> | undefined;
    res = new Devres(core, 'mapping', () => {
      order.push('unmap start');
      res?.dispose(() => order.push('free table and pages'));
      order.push('unmap end');
    });
    m.pci.unbind(dev);
    expect(order).toEqual(['unmap start', 'unmap end', 'free table and pages']);
  });

  it('access with another device is EINVAL, as in Rust', () => {
    const a = boundDevice();
    const b = boundDevice();
    const res = new Devres(a.core, 1, () => {});
    try {
      res.access(b.core);
      expect.unreachable();
    } catch (e) {
      expect((e as KernelError).errno).toBe(EINVAL);
    }
  });

  it('Revocable.revoke wins once', () => {
    const r = new Revocable(3, () => {});
    expect(r.tryAccessWith((x) => x * 2)).toBe(6);
    expect(r.revoke()).toBe(true);
    expect(r.revoke()).toBe(false);
    expect(r.tryAccess()).toBeUndefined();
  });
});

describe('device DMA engine (direct translation)', () => {
  it('moves real bytes and faults beyond the mask or outside RAM without throwing', () => {
    const m = new Machine({ memory: '8G' });
    const dev = m.pci.addDevice({ name: 'd', dmaMask: 32 });
    expect(dev.dma.write(0x200000, new Uint8Array([1, 2, 3])).ok).toBe(true);
    expect(m.mm.readPhys(0x200000, 3)).toEqual(new Uint8Array([1, 2, 3]));
    const r = dev.dma.read(0x200001, 2);
    expect(r.ok && Array.from(r.value)).toEqual([2, 3]);
    const high = dev.dma.write(5 * 2 ** 30, new Uint8Array(4));
    expect(high.ok).toBe(false);
    expect(!high.ok && high.fault.reason).toBe('beyond-mask');
    const dev64 = m.pci.addDevice({ name: 'e', dmaMask: 64 });
    const hole = dev64.dma.read(9 * 2 ** 30, 16);
    expect(!hole.ok && hole.fault.reason).toBe('not-ram');
    expect(dev64.dma.faults).toHaveLength(1);
  });
});
