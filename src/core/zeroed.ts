/**
 * @module core/zeroed
 * Large zero-filled buffers straight from the operating system. `new ArrayBuffer(n)` is calloc:
 * once a process has freed a buffer that size, calloc hands the memory back from its heap and
 * clears it with memset (3 × 4 MiB of page metadata cost a 16 GiB machine ~1.1 ms of its ~3.4 ms
 * build, and the same again in collections: bench/RESULTS.md, session 11). A WebAssembly memory is
 * mapped fresh: its pages are the kernel's zero page until first written, so a large, mostly
 * untouched array costs what is written of it. Views over it are ordinary typed arrays (measured:
 * the same speed to read and write).
 */

/** Bytes of a WebAssembly page. */
const WASM_PAGE = 65536;
/** Below this, calloc's clearing costs less than a mapping. */
const MIN_MAPPED_BYTES = 1 << 20;
/** Pages a 32-bit WebAssembly memory can have. */
const MAX_WASM_PAGES = 65536;

type MemoryCtor = new (d: { initial: number; maximum: number }) => { buffer: ArrayBuffer };
/** WebAssembly.Memory where this engine has it (not under --jitless), else null. */
const wasmMemory: MemoryCtor | null = ((): MemoryCtor | null => {
  const wasm = (globalThis as { WebAssembly?: { Memory?: unknown } }).WebAssembly;
  return typeof wasm?.Memory === 'function' ? (wasm.Memory as MemoryCtor) : null;
})();

/** Set once the engine refused a mapping: later buffers go straight to calloc. */
let mappingRefused = false;

/**
 * A zero-filled buffer of at least `bytes` bytes (views must give their length: a mapped buffer is
 * rounded up to 64 KiB). Never grown or detached.
 * @example const state = new Uint8Array(zeroedBuffer(n), 0, n);
 */
export function zeroedBuffer(bytes: number): ArrayBuffer {
  if (wasmMemory !== null && !mappingRefused && bytes >= MIN_MAPPED_BYTES) {
    const pages = Math.ceil(bytes / WASM_PAGE);
    if (pages <= MAX_WASM_PAGES) {
      try {
        return new wasmMemory({ initial: pages, maximum: pages }).buffer;
      } catch {
        // Out of address space for mappings (a `ulimit -v`, or thousands of live machines: each
        // memory reserves guard space): calloc still works, and from now on it is used at once
        // (the engine collects garbage before refusing: a refused mapping cost ~30 ms).
        mappingRefused = true;
      }
    }
  }
  return new ArrayBuffer(bytes);
}

/**
 * A zero-filled Uint8Array of `n` elements from {@link zeroedBuffer}.
 * @example const marks = zeroedBytes(1 << 22);
 */
export function zeroedBytes(n: number): Uint8Array {
  return new Uint8Array(zeroedBuffer(n), 0, n);
}
