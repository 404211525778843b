import { describe, expect, it } from 'vitest';
import { Clock, EINVAL, ENOMEM, errnoName, FaultInjector, KernelError, parseSize, Rng, formatBytes } from '../../src/core/index.ts';

describe('parseSize', () => {
  it('reads numbers and suffixed strings', () => {
    expect(parseSize('64G')).toBe(64 * 2 ** 30);
    expect(parseSize('256K')).toBe(256 * 1024);
    expect(parseSize('1.5M')).toBe(1.5 * 2 ** 20);
    expect(parseSize('4096')).toBe(4096);
    expect(parseSize('1TiB')).toBe(2 ** 40);
    expect(parseSize(123)).toBe(123);
  });
  it('refuses bad sizes with EINVAL naming the argument', () => {
    for (const bad of ['12X', '', '-1', -5, 1.5, Number.NaN, 2 ** 60] as const) {
      try {
        parseSize(bad, 'Machine', 'memory');
        expect.unreachable(`accepted ${String(bad)}`);
      } catch (e) {
        expect(e).toBeInstanceOf(KernelError);
        expect((e as KernelError).errno).toBe(EINVAL);
        expect((e as KernelError).message).toContain('memory');
      }
    }
  });
  it('formats bytes', () => {
    expect(formatBytes(3 * 2 ** 30)).toBe('3 GiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
  });
});

describe('errno', () => {
  it('names values either sign', () => {
    expect(errnoName(-EINVAL)).toBe('EINVAL');
    expect(errnoName(ENOMEM)).toBe('ENOMEM');
  });
});

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const sa = Array.from({ length: 8 }, () => a.u32());
    expect(Array.from({ length: 8 }, () => b.u32())).toEqual(sa);
    expect(Array.from({ length: 8 }, () => c.u32())).not.toEqual(sa);
  });
  it('range stays inside its bounds', () => {
    const r = new Rng(1);
    for (let i = 0; i < 1000; i++) {
      const v = r.range(3, 7);
      expect(v).toBeGreaterThanOrEqual(3);
      expect(v).toBeLessThanOrEqual(7);
    }
  });
});

describe('Clock', () => {
  it('fires timers in time order as time advances', () => {
    const clock = new Clock();
    const fired: string[] = [];
    clock.setTimeout(20, () => fired.push(`b@${clock.now}`));
    clock.setTimeout(10, () => fired.push(`a@${clock.now}`));
    const cancel = clock.setTimeout(15, () => fired.push('never'));
    cancel();
    clock.advance(5);
    expect(fired).toEqual([]);
    clock.advance(100);
    expect(fired).toEqual(['a@10', 'b@20']);
    expect(clock.now).toBe(105);
  });
});

describe('FaultInjector', () => {
  it('fails exactly the nth allocation of a kind', () => {
    const f = new FaultInjector(1);
    f.inject('page', { nth: 3 });
    expect([1, 2, 3, 4, 5].map(() => f.shouldFail('page'))).toEqual([false, false, true, false, false]);
    expect(f.shouldFail('iova')).toBe(false);
    expect(f.injected.page).toBe(1);
  });
  it('fails every allocation after n, up to `times`', () => {
    const f = new FaultInjector(1);
    f.inject('iova', { after: 2, times: 2 });
    expect([1, 2, 3, 4, 5].map(() => f.shouldFail('iova'))).toEqual([false, true, true, false, false]);
  });
  it('random failures are reproducible under the seed', () => {
    const run = (): boolean[] => {
      const f = new FaultInjector(9);
      f.inject('page', { probability: 0.5 });
      return Array.from({ length: 32 }, () => f.shouldFail('page'));
    };
    const a = run();
    expect(run()).toEqual(a);
    expect(a.some(Boolean)).toBe(true);
    expect(a.every(Boolean)).toBe(false);
  });
  it('refuses bad rules', () => {
    const f = new FaultInjector(1);
    expect(() => f.inject('page', { nth: 0 })).toThrow(KernelError);
    expect(() => f.inject('page', { probability: 2 })).toThrow(/probability/);
    expect(() => f.inject('bogus' as never, {})).toThrow(/kind/);
  });
});
