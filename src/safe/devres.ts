/**
 * @module safe/devres
 * Devres<T> (rust/kernel/devres.rs): a resource bound to a device's driver binding, revoked at
 * unbind through the device's devres list.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { Bound } from '../device/context.ts';
import type { Device } from '../device/device.ts';
import type { DevresAction } from '../device/devres.ts';
import { Revocable } from './revocable.ts';

/**
 * A resource bound to a device's driver binding: revoked (torn down) at unbind, or when disposed,
 * whichever comes first, exactly once.
 * @example
 * const res = new Devres(dev, mapping, (m) => m.unmap());  // dev: Device<Bound>
 * res.access(dev).use();       // needs the bound device it belongs to
 * res.tryAccess()              // undefined after unbind
 */
export class Devres<T> implements Disposable {
  readonly #dev: Device;
  readonly #inner: Revocable<T>;
  readonly #action: DevresAction;

  /**
   * Register `data` with the bound device `dev`; `teardown` runs at unbind or dispose.
   * @throws KernelError EINVAL when `dev` is not bound to a driver.
   */
  constructor(dev: Device<Bound>, data: T, teardown: (data: T) => void, name = 'Devres') {
    dev.assertBound('Devres::new');
    this.#dev = dev;
    this.#inner = new Revocable(data, teardown);
    this.#action = { name, release: () => { this.#inner.revoke(); } };
    dev.devres.add(this.#action);
  }

  /** The data if not revoked. */
  tryAccess(): T | undefined {
    return this.#inner.tryAccess();
  }

  /**
   * The data, proven alive by the bound device reference.
   * @throws KernelError EINVAL when `dev` is not the device this resource belongs to (as Rust).
   */
  access(dev: Device<Bound>): T {
    if (dev !== this.#dev) throw new KernelError(EINVAL, 'Devres::access', `resource belongs to ${this.#dev.name}, not ${dev.name}`, 'dev');
    dev.assertBound('Devres::access');
    const d = this.#inner.tryAccess();
    if (d === undefined) throw new KernelError(EINVAL, 'Devres::access', 'resource was revoked');
    return d;
  }

  /** The device this resource belongs to. */
  device(): Device {
    return this.#dev;
  }

  /** True once revoked (by unbind or dispose). */
  get revoked(): boolean {
    return this.#inner.revoked;
  }

  /**
   * Drop: revoke now if unbind has not; then `then` runs once revocation is complete. When unbind
   * is revoking at this very moment, `then` waits for it (the fix for the concurrent-revokers race).
   */
  dispose(then?: () => void): void {
    if (then !== undefined && typeof then !== 'function') throw new KernelError(EINVAL, 'Devres.dispose', `expected a function, got ${typeof then}`, 'then');
    if (this.#inner.revoke()) this.#dev.devres.remove(this.#action);
    this.#inner.whenRevoked(then ?? (() => {}));
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
