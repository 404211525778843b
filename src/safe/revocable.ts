/**
 * @module safe/revocable
 * Revocable<T>: data that can be taken away (rust/kernel/revocable.rs). After revoke() the data is
 * torn down exactly once and tryAccess() returns undefined.
 */

type State = 'available' | 'revoking' | 'revoked';

/**
 * A revocable value with a teardown run exactly once.
 * @example
 * const r = new Revocable(mapping, (m) => m.unmap());
 * r.tryAccess()?.use(); r.revoke(); r.tryAccess() // undefined
 */
export class Revocable<T> {
  // INVARIANT: _data is defined only while _state is 'available' or 'revoking'; _teardown runs at
  //   most once, during the revoke() call that moved _state from 'available'.
  private _state: State = 'available';
  private _data: T | undefined;
  private readonly _teardown: (data: T) => void;
  private _waiters: Array<() => void> = [];

  constructor(data: T, teardown: (data: T) => void) {
    this._data = data;
    this._teardown = teardown;
  }

  /** The data, or undefined once revocation started. */
  tryAccess(): T | undefined {
    return this._state === 'available' ? this._data : undefined;
  }

  /** Run `f` on the data if still available; returns its result or undefined. */
  tryAccessWith<R>(f: (data: T) => R): R | undefined {
    const d = this.tryAccess();
    return d === undefined ? undefined : f(d);
  }

  /** True once revoke() has finished tearing the data down. */
  get revoked(): boolean {
    return this._state === 'revoked';
  }

  /** True from the start of revocation. */
  get revoking(): boolean {
    return this._state !== 'available';
  }

  /**
   * Revoke: if this call wins, tear the data down and return true; false if already revoking or
   * revoked (the winner does the teardown).
   */
  revoke(): boolean {
    if (this._state !== 'available') return false;
    this._state = 'revoking';
    const data = this._data as T;
    try {
      this._teardown(data);
    } finally {
      this._data = undefined;
      this._state = 'revoked';
      const waiters = this._waiters;
      this._waiters = [];
      for (const w of waiters) w();
    }
    return true;
  }

  /**
   * Run `then` once revocation is complete: now if it is (or nothing started it), otherwise when
   * the revoking call finishes (the Completion the Rust code waits on).
   */
  whenRevoked(then: () => void): void {
    if (this._state === 'revoking') this._waiters.push(then);
    else then();
  }
}
