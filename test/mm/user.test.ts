/** User address spaces and pinned user pages: pin_user_pages_fast, unpin_user_page*, accounting, leaks. */
import { describe, expect, it } from 'vitest';
import {
  EFAULT, EINVAL, ENOMEM, FOLL_DUMP, FOLL_FORCE, FOLL_GET, FOLL_LONGTERM, FOLL_PCI_P2PDMA, FOLL_PIN, FOLL_WRITE, KernelBug, Machine,
  TASK_SIZE_MAX, account_locked_vm, auditMm, pin_user_pages_fast, unpin_user_page, unpin_user_page_range_dirty_lock, unpin_user_pages,
  unpin_user_pages_dirty_lock,
} from '../../src/index.ts';
import { dmaFindings } from '../../src/testing/index.ts';

const P = 4096;
const machine = () => new Machine({ memory: '256M' });
const warned = (m: Machine, text: string) => m.klog.messages.some((k) => k.message.includes(text));

describe('a user address space', () => {
  it('mmap, touch, read back; munmap frees the pages', () => {
    const m = machine();
    const before = m.mm.allocatedPages;
    const a = m.user.mmap(3 * P);
    m.user.write(a + P + 10, new Uint8Array([1, 2, 3]));
    expect(Array.from(m.user.read(a + P + 10, 3))).toEqual([1, 2, 3]);
    expect(m.mm.allocatedPages).toBe(before + 1); // only the touched page is backed
    expect(m.user.munmap(a, 3 * P)).toBe(0);
    expect(m.mm.allocatedPages).toBe(before);
    expect(() => m.user.read(a, 1)).toThrow(expect.objectContaining({ errno: EFAULT }) as Error);
    expect(auditMm(m.mm)).toEqual([]);
  });

  it('a huge mapping is backed by 2 MiB folios: pinning it gives 512 consecutive pages', () => {
    const m = machine();
    const a = m.user.mmap(4 << 20, { huge: true });
    expect(a % (2 << 20)).toBe(0);
    const pages: number[] = new Array(512);
    expect(pin_user_pages_fast(m.user, a + (2 << 20), 512, FOLL_WRITE | FOLL_LONGTERM, pages)).toBe(512);
    expect(pages.every((p, i) => p === (pages[0] as number) + i)).toBe(true);
    unpin_user_pages(m.user, pages, 512);
  });
});

describe('pin_user_pages_fast', () => {
  it('pins from the page holding start; each pin holds its page; unpin releases it', () => {
    const m = machine();
    const a = m.user.mmap(4 * P);
    const pages: number[] = [];
    expect(pin_user_pages_fast(m.user, a + 100, 4, FOLL_WRITE, pages)).toBe(4);
    expect(pages.every((p) => m.mm.pinsOf(p) === 1)).toBe(true);
    // The device's data lands in the very pages the process sees.
    m.mm.writePhys((pages[2] as number) * P + 5, new Uint8Array([42]), 0, 1);
    expect(Array.from(m.user.read(a + 2 * P + 5, 1))).toEqual([42]);
    unpin_user_pages_dirty_lock(m.user, pages, 4, true);
    expect(m.mm.dirtyPages.has(pages[0] as number)).toBe(true);
    expect(m.mm.pinnedPages().size).toBe(0);
  });

  it('short count at the end of a mapping; an errno only when nothing was pinned', () => {
    const m = machine();
    const a = m.user.mmap(2 * P);
    const pages: number[] = new Array(8);
    expect(pin_user_pages_fast(m.user, a, 8, 0, pages)).toBe(2);
    unpin_user_pages(m.user, pages, 2);
    expect(pin_user_pages_fast(m.user, a + 2 * P, 1, 0, pages)).toBe(-EFAULT);
    expect(pin_user_pages_fast(m.user, TASK_SIZE_MAX, 1, 0, pages)).toBe(-EFAULT);
    expect(pin_user_pages_fast(m.user, a, 0, 0, pages)).toBe(0);
  });

  it('FOLL_WRITE on a read-only mapping is -EFAULT unless FOLL_FORCE', () => {
    const m = machine();
    const a = m.user.mmap(P, { write: false });
    const pages: number[] = [];
    expect(pin_user_pages_fast(m.user, a, 1, FOLL_WRITE, pages)).toBe(-EFAULT);
    expect(pin_user_pages_fast(m.user, a, 1, FOLL_WRITE | FOLL_FORCE, pages)).toBe(1);
    unpin_user_page(m.user, pages[0] as number);
  });

  it('the kernel\'s flag checks: WARN_ON_ONCE and -EINVAL', () => {
    const m = machine();
    const a = m.user.mmap(P);
    const pages: number[] = [];
    expect(pin_user_pages_fast(m.user, a, 1, FOLL_PIN, pages)).toBe(-EINVAL);
    expect(warned(m, 'INTERNAL_GUP_FLAGS')).toBe(true);
    expect(pin_user_pages_fast(m.user, a, 1, FOLL_GET, pages)).toBe(-EINVAL);
    expect(pin_user_pages_fast(m.user, a, 1, FOLL_LONGTERM | FOLL_PCI_P2PDMA, pages)).toBe(-EINVAL);
    expect(pin_user_pages_fast(m.user, a, 1, FOLL_DUMP, pages)).toBe(-EINVAL);
    expect(warned(m, 'FOLL_FAST_ONLY')).toBe(true);
    expect(m.mm.pinnedPages().size).toBe(0);
  });
});

describe('planted pin bugs', () => {
  it('munmap while pinned keeps the page until the last unpin; freeing a pinned page is a KernelBug', () => {
    const m = machine();
    const a = m.user.mmap(P);
    const pages: number[] = [];
    pin_user_pages_fast(m.user, a, 1, FOLL_WRITE | FOLL_LONGTERM, pages);
    const pfn = pages[0] as number;
    const before = m.mm.allocatedPages;
    m.user.munmap(a, P);
    expect(m.mm.allocatedPages).toBe(before); // the pin holds it
    expect(() => m.mm.__free_pages(pfn, 0)).toThrow(KernelBug);
    unpin_user_page(m.user, pfn);
    expect(m.mm.allocatedPages).toBe(before - 1);
    expect(auditMm(m.mm)).toEqual([]);
  });

  it('unpinning more than was pinned is a KernelBug, and nothing is unpinned', () => {
    const m = machine();
    const a = m.user.mmap(2 * P);
    const pages: number[] = [];
    pin_user_pages_fast(m.user, a, 2, 0, pages);
    expect(() => unpin_user_pages(m.user, [pages[0] as number, pages[1] as number, pages[1] as number], 3)).toThrow(KernelBug);
    expect(m.mm.pinsOf(pages[0] as number)).toBe(1);
    unpin_user_page_range_dirty_lock(m.user, pages[0] as number, 1, false);
    expect(() => unpin_user_page(m.user, pages[0] as number)).toThrow(KernelBug);
    unpin_user_page(m.user, pages[1] as number);
  });

  it('pins left when the driver is gone are leaked-pin findings; a driver that unpins in remove leaves none', () => {
    for (const unpins of [false, true]) {
      const m = machine();
      const dev = m.pci.addDevice({ name: '0000:01:00.0', dmaMask: 64 });
      const a = m.user.mmap(4 * P);
      const pages: number[] = [];
      m.pci.bind(dev, {
        name: 'pinner',
        probe: () => { pin_user_pages_fast(m.user, a, 4, FOLL_WRITE | FOLL_LONGTERM, pages); },
        remove: () => { if (unpins) unpin_user_pages(m.user, pages, 4); },
      });
      expect(dmaFindings(m)).toEqual([]); // bound: the driver may still unpin
      m.pci.unbind(dev);
      const kinds = dmaFindings(m).map((f) => f.kind);
      expect(kinds.includes('leaked-pin')).toBe(!unpins);
      expect(dmaFindings(m, { live: true }).some((f) => f.kind === 'leaked-pin')).toBe(!unpins);
    }
  });
});

describe('accounting against RLIMIT_MEMLOCK', () => {
  it('account_locked_vm: -ENOMEM past the limit with nothing charged; CAP_IPC_LOCK bypasses it', () => {
    const m = machine();
    m.user.rlimitMemlock = 16 * P;
    expect(account_locked_vm(m.user, 16, true)).toBe(0);
    expect(account_locked_vm(m.user, 1, true)).toBe(-ENOMEM);
    expect(m.user.locked_vm).toBe(16);
    m.user.capIpcLock = true;
    expect(account_locked_vm(m.user, 1, true)).toBe(0);
    expect(account_locked_vm(m.user, 17, false)).toBe(0);
    expect(m.user.locked_vm).toBe(0);
  });
});
