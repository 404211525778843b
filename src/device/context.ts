/**
 * @module device/context
 * Device contexts as type-states, after rust/kernel/device.rs: `Core` (inside a bus callback such
 * as probe) can be used as `Bound` (bound to a driver), which can be used as `Normal`. APIs that
 * need a bound device ask for `Device<Bound>` so misuse fails to compile.
 */
declare const NORMAL: unique symbol;
declare const BOUND: unique symbol;
declare const CORE: unique symbol;

/** Any device reference. */
export interface Normal { readonly [NORMAL]: true }
/** The device is bound to a driver for as long as this reference is used. */
export interface Bound extends Normal { readonly [BOUND]: true }
/** Inside a bus callback (probe/remove); usable as Bound. */
export interface Core extends Bound { readonly [CORE]: true }

/** The device contexts. */
export type DeviceContext = Normal | Bound | Core;
