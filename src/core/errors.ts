/**
 * @module core/errors
 * The two exceptions dmasim throws. Kernel-layer functions return what the kernel returns;
 * the safe layer throws {@link KernelError}; a kernel `BUG()` throws {@link KernelBug}.
 */
import { errnoName } from './errno.ts';

/**
 * Misuse of the safe layer, or a bad argument: carries the kernel errno (positive) and names
 * the function and argument at fault.
 * @example
 * try { machine.mm.vmalloc(-1) } catch (e) { if (e instanceof KernelError) e.errno } // EINVAL
 */
export class KernelError extends Error {
  override readonly name = 'KernelError';
  /** Positive errno, e.g. `EINVAL`. */
  readonly errno: number;
  /** The function that refused. */
  readonly fn: string;
  /** The argument at fault, when one is. */
  readonly arg: string | undefined;

  constructor(errno: number, fn: string, message: string, arg?: string) {
    super(`${fn}: ${arg === undefined ? '' : `${arg}: `}${message} (-${errnoName(errno)})`);
    this.errno = errno;
    this.fn = fn;
    this.arg = arg;
  }
}

/**
 * A kernel `BUG()`: the simulated kernel would oops here. State is left as it was before the call.
 * @example
 * expect(() => mm.__free_pages(pfn, 0)).toThrow(KernelBug) // double free
 */
export class KernelBug extends Error {
  override readonly name = 'KernelBug';
  /** The function that hit the BUG. */
  readonly fn: string;

  constructor(fn: string, message: string) {
    super(`kernel BUG in ${fn}: ${message}`);
    this.fn = fn;
  }
}
