/** @module dma/ledger: the DMA ledger (every live mapping and allocation), the device-access and CPU-ownership checks. */
export { DmaLedger, DeviceLedger, LEDGER_HISTORY, type LedgerHost } from './ledger.ts';
export { LedgerEntry, type AddrRange, type LedgerEntryType, type LedgerRelease } from './entry.ts';
export { FindingLog, FINDINGS_MAX, type AccessFinding, type AccessFindingKind } from './findings.ts';
export { deviceAccessChecker, cpuOwnershipChecker } from './access-check.ts';
export { RangeIndex, type IndexedRange } from './range-index.ts';
