/**
 * @module sim/findings
 * Everything a driver test's matchers judge, as one list: leaks from the DMA ledger, dma-debug's
 * errors, bad device and CPU accesses, audit violations and kernel WARNs.
 */
import type { LedgerEntry } from '../dma/ledger/entry.ts';
import { FINDINGS_MAX } from '../dma/ledger/findings.ts';
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import { Machine } from './machine.ts';
import { sharedSet } from '../core/shared-registry.ts';

/** The kinds of finding. */
export type DmaFindingKind =
  | 'leaked-mapping' | 'leaked-coherent' | 'leaked-pin' | 'dma-debug'
  | 'access-unmapped' | 'access-after-unmap' | 'access-direction' | 'access-other-device' | 'cpu-access-device-owned'
  | 'audit' | 'warn';

/** One thing wrong with the run. */
export interface DmaFinding {
  readonly kind: DmaFindingKind;
  /** The device concerned, or '' (an audit violation or WARN not tied to one). */
  readonly device: string;
  /** What happened, naming the call that created the mapping where there is one. */
  readonly message: string;
  /** The ledger entry involved (a leaked mapping, the mapping an access violated). */
  readonly mapping?: LedgerEntry;
  /** Virtual time, ns, when known. */
  readonly time?: number;
}

/** What dmaFindings reports. */
export interface DmaFindingsOptions {
  /** Also list live mappings of bound devices (an end-of-test check: everything should be gone). */
  readonly live?: boolean;
  /** Only these kinds. */
  readonly kinds?: readonly DmaFindingKind[];
  /** Skip `machine.audit()` (it walks every page). */
  readonly audit?: boolean;
}

/** Every finding kind. */
export const FINDING_KINDS: readonly DmaFindingKind[] = [
  'leaked-mapping', 'leaked-coherent', 'leaked-pin', 'dma-debug',
  'access-unmapped', 'access-after-unmap', 'access-direction', 'access-other-device', 'cpu-access-device-owned',
  'audit', 'warn',
];

/** The kinds each matcher judges. */
export const LEAK_KINDS: readonly DmaFindingKind[] = ['leaked-mapping', 'leaked-coherent', 'leaked-pin', 'audit'];
export const DEBUG_KINDS: readonly DmaFindingKind[] = ['dma-debug', 'warn'];
export const ACCESS_KINDS: readonly DmaFindingKind[] = ['access-unmapped', 'access-after-unmap', 'access-direction', 'access-other-device', 'cpu-access-device-owned'];

function leaks(m: Machine, live: boolean): DmaFinding[] {
  const out: DmaFinding[] = [];
  for (const e of m.dma.ledger.entries()) {
    const leaked = e.orphanedAt !== null || !e.device.isBound;
    if (!leaked && !live) continue;
    const why = e.orphanedAt !== null ? `still live after ${e.device.name} was unbound at t=${e.orphanedAt} ns`
      : leaked ? `still live and ${e.device.name} has no driver` : 'still live at the end of the test';
    out.push({
      kind: e.type === 'coherent' || e.type === 'noncoherent' ? 'leaked-coherent' : 'leaked-mapping',
      device: e.device.name, mapping: e, time: e.time,
      message: `${e.type === 'coherent' ? 'coherent allocation' : e.type === 'noncoherent' ? 'noncoherent allocation' : 'mapping'} ${why}: ${e.describe()}`,
    });
  }
  out.push(...leakedPins(m, live));
  return out;
}

/**
 * Pinned user pages still held at the end of a test (`live`), or once no driver is bound (nothing
 * left could unpin them): one finding per run of consecutive pfns.
 */
function leakedPins(m: Machine, live: boolean): DmaFinding[] {
  const pins = m.mm.pinnedPages();
  if (pins.size === 0) return [];
  const anyBound = [...m.devices()].some((d) => d.isBound);
  if (!live && anyBound) return [];
  const why = live ? 'still pinned at the end of the test' : 'still pinned and no driver is bound to unpin them';
  const pfns = [...pins.keys()].sort((a, b) => a - b);
  const out: DmaFinding[] = [];
  for (let i = 0; i < pfns.length;) {
    let j = i + 1;
    while (j < pfns.length && pfns[j] === (pfns[j - 1] as number) + 1) j++;
    const first = pfns[i] as number;
    const n = j - i;
    out.push({
      kind: 'leaked-pin', device: '',
      message: `${n} user page${n === 1 ? '' : 's'} (pfn 0x${first.toString(16)}${n === 1 ? '' : `-0x${(first + n - 1).toString(16)}`}) ${why}: pin_user_pages*() without unpin_user_page*()`,
    });
    i = j;
  }
  return out;
}

function debugErrors(m: Machine): DmaFinding[] {
  const dbg = m.dmaDebug;
  if (dbg === null) return [];
  const out: DmaFinding[] = dbg.errors.map((e) => ({ kind: 'dma-debug' as const, device: e.device, message: e.text.trimEnd() }));
  // error_count counts every err_printk, printed or filtered; the list keeps the newest.
  if (dbg.error_count > out.length) {
    out.push({ kind: 'dma-debug', device: '', message: `dma-debug error_count is ${dbg.error_count}, ${dbg.error_count - out.length} more than the errors listed` });
  }
  return out;
}

/**
 * Every finding on `machine`, oldest kind first: leaks (ledger entries of devices no longer bound,
 * dma-debug's "pending DMA allocations" moment; with `{ live: true }` every live entry), dma-debug
 * errors (whether or not printing was filtered), bad device and CPU accesses, audit violations and
 * kernel WARNs.
 * @example
 * const f = dmaFindings(machine);
 * expect(f.filter((x) => x.kind === 'leaked-mapping')).toEqual([]);
 */
export function dmaFindings(machine: Machine, opts: DmaFindingsOptions = {}): DmaFinding[] {
  checkArgs(machine, opts);
  const out: DmaFinding[] = [
    ...leaks(machine, opts.live === true),
    ...debugErrors(machine),
    ...machine.dma.ledger.findings.list().map((f) => ({
      kind: f.kind, device: f.device, message: f.message, time: f.time, ...(f.mapping === undefined ? {} : { mapping: f.mapping }),
    })),
  ];
  for (const [kind, n] of machine.dma.ledger.findings.dropped) {
    out.push({ kind, device: '', message: `${n} older ${kind} findings were dropped (the log keeps the newest ${FINDINGS_MAX / 2}..${FINDINGS_MAX})` });
  }
  if (opts.audit !== false) for (const v of machine.audit()) out.push({ kind: 'audit', device: '', message: `[${v.check}] ${v.message}` });
  // dma-debug's printed errors are WARNs too: list them once, as `dma-debug`.
  const printed = new Set(machine.dmaDebug?.errors.filter((e) => e.printed).map((e) => e.text));
  for (const w of machine.klog.warnings()) {
    if (printed.has(w.message)) continue;
    out.push({ kind: 'warn', device: '', message: `WARN in ${w.fn}: ${w.message.trimEnd()}`, time: w.time });
  }
  if (machine.klog.droppedWarnings > 0) out.push({ kind: 'warn', device: '', message: `${machine.klog.droppedWarnings} older WARNs were dropped from the kernel log (it keeps the newest messages)` });
  return opts.kinds === undefined ? out : out.filter((f) => (opts.kinds as readonly DmaFindingKind[]).includes(f.kind));
}

/** dmaFindings' arguments: a Machine and well-formed options, else EINVAL naming the argument. */
function checkArgs(machine: unknown, opts: unknown): void {
  const bad = (arg: string, what: string): never => { throw new KernelError(EINVAL, 'dmaFindings', what, arg); };
  if (!(machine instanceof Machine)) bad('machine', `expected a dmasim Machine, got ${machine === null ? 'null' : typeof machine}`);
  if (typeof opts !== 'object' || opts === null) bad('opts', 'expected an options object');
  const o = opts as Record<string, unknown>;
  for (const k of ['live', 'audit'] as const) if (o[k] !== undefined && typeof o[k] !== 'boolean') bad(`opts.${k}`, `${k} is true or false, got ${String(o[k])}`);
  if (o['kinds'] !== undefined) {
    if (!Array.isArray(o['kinds'])) bad('opts.kinds', 'expected an array of finding kinds');
    for (const k of o['kinds'] as unknown[]) if (!FINDING_KINDS.includes(k as DmaFindingKind)) bad('opts.kinds', `unknown finding kind ${String(k)} (one of ${FINDING_KINDS.join(', ')})`);
  }
}

/**
 * Findings as a readable list, one per line, for a matcher's message.
 * @example formatFindings(dmaFindings(machine))
 */
export function formatFindings(findings: readonly DmaFinding[]): string {
  if (!Array.isArray(findings)) throw new KernelError(EINVAL, 'formatFindings', 'expected an array of findings', 'findings');
  // A message of several lines (dma-debug's) keeps its later lines under its first.
  return findings.map((f) => `  [${f.kind}] ${f.message.replace(/\n/g, '\n    ')}`).join('\n');
}

/** What a copy of dmasim says of a machine: its findings, formatted; null when it is not its machine. */
type Judge = (m: unknown) => { readonly findings: readonly DmaFinding[]; readonly text: string } | null;

// Every loaded copy of dmasim registers how to judge its own machines (instanceof works only within
// a copy), so the CLI can judge a machine whichever copy made it.
sharedSet<Judge>('dmasim.findingJudges').add((m) => {
  if (!(m instanceof Machine)) return null;
  const findings = dmaFindings(m);
  return { findings, text: formatFindings(findings) };
});

/**
 * The findings of a machine made by any copy of dmasim loaded in this process (the CLI's view of
 * the machines a scenario made), or null when no copy knows it.
 * @example const j = judgeMachine(machine); if (j && j.findings.length > 0) console.error(j.text);
 */
export function judgeMachine(m: unknown): { readonly findings: readonly DmaFinding[]; readonly text: string } | null {
  for (const judge of sharedSet<Judge>('dmasim.findingJudges')) {
    const verdict = judge(m);
    if (verdict !== null) return verdict;
  }
  return null;
}
