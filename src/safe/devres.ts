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
  private readonly _dev: Device;
  private readonly _inner: Revocable<T>;
  private readonly _action: DevresAction;

  /**
   * Register `data` with the bound device `dev`; `teardown` runs at unbind or dispose.
   * @throws KernelError EINVAL when `dev` is not bound to a driver.
   */
  constructor(dev: Device<Bound>, data: T, teardown: (data: T) => void, name = 'Devres') {
    dev.assertBound('Devres::new');
    this._dev = dev;
    this._inner = new Revocable(data, teardown);
    this._action = { name, release: () => { this._inner.revoke(); } };
    dev.devres.add(this._action);
  }

  /** The data if not revoked. */
  tryAccess(): T | undefined {
    return this._inner.tryAccess();
  }

  /**
   * The data, proven alive by the bound device reference.
   * @throws KernelError EINVAL when `dev` is not the device this resource belongs to (as Rust).
   */
  access(dev: Device<Bound>): T {
    if (dev !== this._dev) throw new KernelError(EINVAL, 'Devres::access', `resource belongs to ${this._dev.name}, not ${dev.name}`, 'dev');
    dev.assertBound('Devres::access');
    const d = this._inner.tryAccess();
    if (d === undefined) throw new KernelError(EINVAL, 'Devres::access', 'resource was revoked');
    return d;
  }

  /** The device this resource belongs to. */
  device(): Device {
    return this._dev;
  }

  /** True once revoked (by unbind or dispose). */
  get revoked(): boolean {
    return this._inner.revoked;
  }

  /**
   * Drop: revoke now if unbind has not; then `then` runs once revocation is complete. When unbind
   * is revoking at this very moment, `then` waits for it (the fix for the concurrent-revokers race).
   */
  dispose(then?: () => void): void {
    if (then !== undefined && typeof then !== 'function') throw new KernelError(EINVAL, 'Devres.dispose', `expected a function, got ${typeof then}`, 'then');
    if (this._inner.revoke()) this._dev.devres.remove(this._action);
    this._inner.whenRevoked(then ?? (() => {}));
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
