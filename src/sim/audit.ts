/**
 * @module sim/audit
 * machine.audit(): every layer's accounting checked against every other's. Each layer registers
 * a named check; a check returns the violations it finds (empty when sound).
 */

/** One registered check. */
export interface AuditCheck {
  readonly name: string;
  run(): string[];
}

/** A violation, tagged with the check that found it. */
export interface AuditViolation {
  readonly check: string;
  readonly message: string;
}

/**
 * The checks of one machine.
 * @example machine.auditor.add({ name: 'mm', run: () => auditMm(machine.mm) })
 */
export class Auditor {
  private readonly _checks: AuditCheck[] = [];

  add(check: AuditCheck): void {
    this._checks.push(check);
  }

  /**
   * Run every check; empty when the machine is sound. `instead` runs another function in place of
   * the named checks (an incremental form of the same check).
   */
  run(instead?: Readonly<Record<string, () => string[]>>): AuditViolation[] {
    const out: AuditViolation[] = [];
    for (const c of this._checks) {
      const lines = instead !== undefined && Object.hasOwn(instead, c.name) ? (instead[c.name] as () => string[])() : c.run();
      for (const m of lines) out.push({ check: c.name, message: m });
    }
    return out;
  }

  /** Names of the registered checks. */
  names(): string[] {
    return this._checks.map((c) => c.name);
  }
}
