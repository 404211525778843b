/**
 * @module dma/iommu/translator
 * How a device behind the IOMMU reaches memory: through its group's domain. Identity domains pass
 * addresses through, blocked ones fault everything, paging domains walk the IOTLB and page table.
 * Two hazards are reported with the unmap that caused them (the use-after-unmap detector, which no
 * real kernel tool offers): an access served only by a stale IOTLB entry (the lazy window), and a
 * fault on an IOVA the device had mapped and then unmapped.
 */
import type { Device } from '../../device/device.ts';
import { directTranslator, type DmaFault, type DmaTranslator, type Translation } from '../../device/dma-engine.ts';
import type { Iommu, UnmapRecord } from '../../iommu/iommu.ts';
import { IOMMU_DOMAIN_BLOCKED, IOMMU_DOMAIN_IDENTITY } from '../../iommu/map-domain.ts';
import { translate, TranslateResult } from '../../iommu/translate.ts';
import { pushBounded } from '../../core/bounded.ts';

/** A device access that reached memory it had unmapped, or faulted on an IOVA it had unmapped. */
export interface UseAfterUnmap {
  readonly device: string;
  readonly iova: number;
  readonly access: 'read' | 'write';
  /** 'stale-iotlb': bytes moved through a translation whose PTE was gone; 'fault': the access faulted. */
  readonly kind: 'stale-iotlb' | 'fault';
  readonly time: number;
  /** The unmap that made it stale, when remembered. */
  readonly unmap: UnmapRecord | undefined;
}

/** The IOMMU translator and the hazards it saw. */
export interface IommuTranslator extends DmaTranslator {
  /** The newest USE_AFTER_UNMAP_MAX events, oldest first. */
  readonly useAfterUnmap: UseAfterUnmap[];
  /** Events dropped to keep the list bounded. */
  readonly useAfterUnmapDropped: number;
}

/** Use-after-unmap events kept. */
export const USE_AFTER_UNMAP_MAX = 1024;

/**
 * The translator for devices behind `iommu`.
 * @example dev.dma.translator = iommuTranslator(machine.iommu)
 */
export function iommuTranslator(iommu: Iommu): IommuTranslator {
  const scratch = new TranslateResult();
  const useAfterUnmap: UseAfterUnmap[] = [];
  // The dropped count is a field of the translator object (not a closure variable): machine
  // snapshots restore it.
  const counts = { useAfterUnmapDropped: 0 };
  const record = (u: UseAfterUnmap): void => { counts.useAfterUnmapDropped += pushBounded(useAfterUnmap, u, USE_AFTER_UNMAP_MAX); };
  const fault = (dev: Device, iova: number, length: number, access: 'read' | 'write', reason: DmaFault['reason'], detail?: string): Translation =>
    ({ ok: false, fault: { device: dev.name, iova, length, access, reason, ...(detail === undefined ? {} : { detail }) } });
  const t: IommuTranslator & { counts: typeof counts } = {
    kind: 'iommu',
    useAfterUnmap,
    counts,
    get useAfterUnmapDropped() { return counts.useAfterUnmapDropped; },
    translate(dev, addr, length, access): Translation {
      const group = iommu.groupOf(dev);
      if (group === undefined) return directTranslator.translate(dev, addr, length, access);
      const domain = group.domain;
      if (domain.type === IOMMU_DOMAIN_IDENTITY) return directTranslator.translate(dev, addr, length, access);
      const now = iommu.ctx.clock.now;
      if (domain.type === IOMMU_DOMAIN_BLOCKED || domain.paging === null) {
        iommu.reportFault(domain, dev.name, addr, access, 'blocked');
        return fault(dev, addr, length, access, 'unmapped', 'the group is attached to a blocking domain');
      }
      const r = translate(domain.paging, addr, length, access, scratch);
      if (!r.ok) {
        const f = r.fault as NonNullable<TranslateResult['fault']>;
        iommu.reportFault(domain, dev.name, f.iova, access, f.reason);
        // A permission fault hit a present PTE: the IOVA is mapped now (perhaps reused since an
        // unmap), so no unmap is to blame; only an unmapped IOVA looks for the unmap that cleared it.
        const unmap = f.reason === 'permission' ? undefined : iommu.unmapCovering(domain.id, f.iova);
        if (unmap !== undefined) record({ device: dev.name, iova: f.iova, access, kind: 'fault', time: now, unmap });
        const detail = unmap === undefined ? undefined : `IOVA unmapped by ${unmap.via} at t=${unmap.time} ns`;
        return fault(dev, f.iova, length, access, f.reason === 'permission' ? 'permission' : 'unmapped', detail);
      }
      if (r.stale) {
        const unmap = iommu.unmapCovering(domain.id, r.staleIova);
        record({ device: dev.name, iova: r.staleIova, access, kind: 'stale-iotlb', time: now, unmap });
        iommu.ctx.logger.warn({ event: 'use_after_unmap', device: dev.name, iova: r.staleIova, access, unmap }, 'device used a stale IOTLB entry');
      }
      const ranges = [];
      for (let i = 0; i < r.nranges; i++) {
        const phys = r.phys[i] as number;
        const len = r.len[i] as number;
        // A mapping can point anywhere (dma_map_resource takes any address): where nothing answers,
        // the access fails on the bus after translation.
        if (!dev.host.memory.answers(phys, len)) return fault(dev, addr, length, access, 'not-ram', `the IOMMU translates it to 0x${phys.toString(16)}, where neither RAM nor device memory answers`);
        ranges.push({ phys, length: len });
      }
      return { ok: true, ranges };
    },
  };
  return t;
}
