/**
 * @module device/devres
 * Device-managed resources: a per-device list of release actions run in reverse order at unbind
 * (devres_release_all). The Rust-style Devres<T> built on it lives in safe/devres.ts.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { Bound } from './context.ts';
import type { Device } from './device.ts';

/** One registered release action. */
export interface DevresAction {
  readonly name: string;
  readonly release: () => void;
}

/**
 * The devres list of one device.
 * @example dev.devres.add({ name: 'dmam_alloc_coherent', release: () => free() })
 */
export class DevresList {
  // INVARIANT: actions are in registration order; release runs them newest first.
  private readonly _actions: DevresAction[] = [];

  /** devm_add_action. */
  add(action: DevresAction): void {
    this._actions.push(action);
  }

  /** devm_remove_action(_nowarn): forget an action without running it; false when absent. */
  remove(action: DevresAction): boolean {
    const i = this._actions.lastIndexOf(action);
    if (i < 0) return false;
    this._actions.splice(i, 1);
    return true;
  }

  /** devres_release_all: run every action, newest first (LIFO). */
  releaseAll(): void {
    while (this._actions.length > 0) (this._actions.pop() as DevresAction).release();
  }

  /** Registered actions, oldest first. */
  get size(): number {
    return this._actions.length;
  }

  /** Names of the registered actions, oldest first. */
  names(): string[] {
    return this._actions.map((a) => a.name);
  }
}
