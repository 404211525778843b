/**
 * @module core/errno
 * Linux errno values, positive as in C (`-EINVAL` is what kernel functions return).
 */
export const EPERM = 1;
export const ENOENT = 2;
export const EIO = 5;
export const E2BIG = 7;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENOSPC = 28;
export const ERANGE = 34;
export const ENOSYS = 38;
export const EOPNOTSUPP = 95;
export const EREMOTEIO = 121;
/** Value too large for defined data type: an address range that wraps (gup). */
export const EOVERFLOW = 75;
/** Address already in use: generic_pt's map over a present entry (the VT-d tables). */
export const EADDRINUSE = 98;

const NAMES: Readonly<Record<number, string>> = {
  [EPERM]: 'EPERM', [ENOENT]: 'ENOENT', [EIO]: 'EIO', [E2BIG]: 'E2BIG', [EAGAIN]: 'EAGAIN',
  [ENOMEM]: 'ENOMEM', [EFAULT]: 'EFAULT', [EBUSY]: 'EBUSY', [EEXIST]: 'EEXIST', [ENODEV]: 'ENODEV',
  [EINVAL]: 'EINVAL', [ENOSPC]: 'ENOSPC', [ERANGE]: 'ERANGE', [ENOSYS]: 'ENOSYS',
  [EOPNOTSUPP]: 'EOPNOTSUPP', [EREMOTEIO]: 'EREMOTEIO', [EADDRINUSE]: 'EADDRINUSE', [EOVERFLOW]: 'EOVERFLOW',
};

/**
 * The symbolic name of an errno value; accepts the negative form kernel functions return.
 * @example errnoName(-22) // 'EINVAL'
 */
export function errnoName(errno: number): string {
  return NAMES[Math.abs(errno)] ?? `E${Math.abs(errno)}`;
}
