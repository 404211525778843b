/**
 * core/zeroed: large zero-filled buffers mapped fresh (a WebAssembly memory) where the engine has
 * WebAssembly, calloc'd otherwise; either way zero, the asked length, independent of each other.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { zeroedBuffer, zeroedBytes } from '../../src/core/zeroed.ts';

describe('zeroedBytes', () => {
  it('gives zeroed, independent arrays of the asked length, small (calloc) and large (mapped)', () => {
    for (const n of [0, 1, 4095, 1 << 20, (1 << 20) + 3, 3 * (1 << 22)]) {
      const a = zeroedBytes(n);
      const b = zeroedBytes(n);
      expect(a.length).toBe(n);
      expect(a.byteOffset).toBe(0);
      expect(a.buffer.byteLength).toBeGreaterThanOrEqual(n);
      expect(Buffer.from(a.buffer).equals(Buffer.alloc(a.buffer.byteLength))).toBe(true);
      if (n > 0) {
        a[n - 1] = 7;
        a[0] = 9;
        expect(b[n - 1]).toBe(0);
        expect(b[0]).toBe(0);
      }
    }
    // A large buffer comes from a mapping where WebAssembly exists (not calloc's heap).
    if (typeof (globalThis as { WebAssembly?: unknown }).WebAssembly === 'object') {
      expect(zeroedBuffer(1 << 22).byteLength % 65536).toBe(0);
    }
  });

  it('without WebAssembly (node --no-expose-wasm) a 16 GiB fragmented machine builds, allocates and audits clean', () => {
    const script = `const { Machine, GFP_KERNEL } = await import(${JSON.stringify(new URL('../../src/index.ts', import.meta.url).pathname)});
const m = new Machine({ memory: '16G', fragment: { level: 0.6 } });
for (let i = 0; i < 100; i++) m.mm.alloc_pages(GFP_KERNEL, 0);
console.log(typeof WebAssembly, JSON.stringify(m.audit()));`;
    const r = spawnSync(process.execPath, ['--no-expose-wasm', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('undefined []');
  });

  it('when the engine refuses mappings (address space limited), machines still build and audit clean', () => {
    // Under ulimit -v a few WebAssembly memories exhaust the address space; each refusal costs the
    // engine a round of collections, so after the first one calloc is used at once.
    const script = `const { Machine } = await import(${JSON.stringify(new URL('../../src/index.ts', import.meta.url).pathname)});
const keep = []; for (let i = 0; i < 8; i++) keep.push(new Machine({ memory: '16G', fragment: { level: 0.6 } }));
console.log(keep.map((m) => m.audit().length).join(','));`;
    const r = spawnSync('bash', ['-c', 'ulimit -v 40000000 && exec "$0" --import tsx --input-type=module -e "$1"', process.execPath, script], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('0,0,0,0,0,0,0,0');
  });
});
