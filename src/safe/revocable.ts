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
  // INVARIANT: #data is defined only while #state is 'available' or 'revoking'; #teardown runs at
  //   most once, during the revoke() call that moved #state from 'available'.
  #state: State = 'available';
  #data: T | undefined;
  readonly #teardown: (data: T) => void;
  #waiters: Array<() => void> = [];

  constructor(data: T, teardown: (data: T) => void) {
    this.#data = data;
    this.#teardown = teardown;
  }

  /** The data, or undefined once revocation started. */
  tryAccess(): T | undefined {
    return this.#state === 'available' ? this.#data : undefined;
  }

  /** Run `f` on the data if still available; returns its result or undefined. */
  tryAccessWith<R>(f: (data: T) => R): R | undefined {
    const d = this.tryAccess();
    return d === undefined ? undefined : f(d);
  }

  /** True once revoke() has finished tearing the data down. */
  get revoked(): boolean {
    return this.#state === 'revoked';
  }

  /** True from the start of revocation. */
  get revoking(): boolean {
    return this.#state !== 'available';
  }

  /**
   * Revoke: if this call wins, tear the data down and return true; false if already revoking or
   * revoked (the winner does the teardown).
   */
  revoke(): boolean {
    if (this.#state !== 'available') return false;
    this.#state = 'revoking';
    const data = this.#data as T;
    try {
      this.#teardown(data);
    } finally {
      this.#data = undefined;
      this.#state = 'revoked';
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const w of waiters) w();
    }
    return true;
  }

  /**
   * Run `then` once revocation is complete: now if it is (or nothing started it), otherwise when
   * the revoking call finishes (the Completion the Rust code waits on).
   */
  whenRevoked(then: () => void): void {
    if (this.#state === 'revoking') this.#waiters.push(then);
    else then();
  }
}
