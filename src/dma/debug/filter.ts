/**
 * @module dma/debug/filter
 * The driver filter (`dma_debug_driver=NAME` at boot, or the debugfs `driver_filter` file): when set,
 * only reports for devices bound to the driver of that name are shown, and the first matching
 * driver object is remembered so that only it matches from then on.
 */
import { DRIVER_NAME_MAX } from './constants.ts';
import type { DebugDriver } from './device.ts';

// The kernel's isalnum()/isspace() over Latin-1 (lib/ctype.c); each UTF-16 unit is one byte here.
const ALNUM = /^[A-Za-z0-9\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u00ff]/;
const SPACE = /[ \t\n\v\f\r\u00a0]/;

/**
 * The filter state.
 * @example
 * const f = new DriverFilter();
 * f.write('e1000 rest\n'); // 'enable driver filter for driver [e1000]\n'
 * f.passes({ name: 'e1000' }) // true
 */
export class DriverFilter {
  // INVARIANT: name is '' (filter off) or at most DRIVER_NAME_MAX characters; current is null
  //   whenever name changes, and afterwards the first driver object that matched name.
  private _name = '';
  private _current: DebugDriver | null = null;

  /** The name filtered on, '' when the filter is off. */
  get name(): string {
    return this._name;
  }

  /** The driver object remembered after the first match, or null. */
  get current(): DebugDriver | null {
    return this._current;
  }

  /**
   * `dma_debug_driver=NAME` at boot: keeps up to 63 characters as they are.
   * @returns the pr_info line to print (without the `DMA-API: ` prefix), or undefined for an empty name
   */
  setFromBoot(name: string): string | undefined {
    this._name = name.slice(0, DRIVER_NAME_MAX);
    this._current = null;
    return this._name === '' ? undefined : `enable driver filter for driver [${this._name}]\n`;
  }

  /**
   * A write to debugfs `driver_filter`: the first 63 characters are read; one starting with an
   * alphanumeric character sets the filter to its first whitespace-separated token, anything else
   * switches the filter off.
   * @returns the pr_info line to print (without the prefix), or undefined when nothing is printed
   */
  write(text: string): string | undefined {
    const buf = text.slice(0, DRIVER_NAME_MAX);
    if (!ALNUM.test(buf)) {
      const wasOn = this._name !== '';
      this._name = '';
      this._current = null;
      return wasOn ? 'switching off dma-debug driver filter\n' : undefined;
    }
    let end = 0;
    while (end < buf.length && !SPACE.test(buf[end] as string) && buf[end] !== '\0') end++;
    this._name = buf.slice(0, end);
    this._current = null;
    return `enable driver filter for driver [${this._name}]\n`;
  }

  /**
   * `driver_filter(dev)`, given the device's driver pointer at the time: true when the filter is off,
   * or the driver is the remembered one, or (nothing remembered yet) its name matches, which makes
   * it the remembered one. A device with no driver never passes a set filter.
   */
  passes(driver: DebugDriver | null | undefined): boolean {
    if (this._name === '') return true;
    if (this._current !== null && driver === this._current) return true;
    if (this._current !== null) return false;
    if (driver === null || driver === undefined) return false;
    if (this._name === driver.name.slice(0, DRIVER_NAME_MAX)) {
      this._current = driver;
      return true;
    }
    return false;
  }
}
