/**
 * @module sim/config
 * Machines described as data (a JSON file or a TS object): the machine options plus its devices,
 * and presets for common shapes.
 */
import { EINVAL } from '../core/errno.ts';
import { KernelError } from '../core/errors.ts';
import type { Device, DeviceOptions } from '../device/device.ts';
import { Machine, type MachineOptions } from './machine.ts';

/** A device in a machine description. */
export interface DeviceConfig extends DeviceOptions {
  /** 'pci' (default) or 'platform'. */
  readonly bus?: 'pci' | 'platform';
}

/** A whole machine as data. */
export interface MachineConfig extends MachineOptions {
  readonly devices?: readonly DeviceConfig[];
}

/** A built machine and its devices by name. */
export interface BuiltMachine {
  readonly machine: Machine;
  readonly devices: Readonly<Record<string, Device>>;
}

/**
 * Build a machine and add its devices; `beforeDevices`, when given, runs on the machine first (a
 * trace replay claims the trace's pages before device probing allocates page tables).
 * @example const { machine, devices } = buildMachine(PRESETS['laptop-nvme-vtd']);
 */
export function buildMachine(config: MachineConfig, beforeDevices?: (machine: Machine) => void): BuiltMachine {
  if (config === null || typeof config !== 'object') throw new KernelError(EINVAL, 'buildMachine', 'expected a machine description object', 'config');
  if (beforeDevices !== undefined && typeof beforeDevices !== 'function') throw new KernelError(EINVAL, 'buildMachine', 'expected a function', 'beforeDevices');
  const { devices = [], ...opts } = config;
  const machine = new Machine(opts);
  beforeDevices?.(machine);
  const out: Record<string, Device> = {};
  for (const d of devices) {
    const { bus = 'pci', ...dev } = d;
    const target = machine.bus(bus);
    if (target === undefined) throw new KernelError(EINVAL, 'buildMachine', `bus must be one of ${machine.buses.map((b) => b.name).join(', ')}, got ${String(bus)}`, 'devices[].bus');
    out[dev.name] = target.addDevice(dev);
  }
  return { machine, devices: out };
}

/**
 * Common machine shapes.
 * - `laptop-nvme-vtd`: 16 GiB, a VT-d IOMMU in lazy mode (39-bit, the usual laptop width), an NVMe
 *   drive (64-bit masks, min_align_mask 0xfff as the NVMe driver sets) and an untrusted
 *   Thunderbolt device (strict domain, bouncing).
 * - `confidential-vm`: 8 GiB guest where every streaming mapping bounces through swiotlb (as
 *   SEV/TDX guests do), with virtio devices and no IOMMU.
 * - `embedded-32bit`: an arm64 board with 6 GiB, no IOMMU, and a 32-bit DMA engine that must
 *   bounce above 4 GiB.
 */
export const PRESETS: Readonly<Record<string, MachineConfig>> = {
  'laptop-nvme-vtd': {
    memory: '16G',
    cpus: 8,
    fragment: { level: 0.7 },
    iommu: { mode: 'lazy', format: 'vtd', addressWidth: 39 },
    devices: [
      { name: '0000:02:00.0', dmaMask: 64, coherentDmaMask: 64, maxSegmentSize: 0xffffffff, minAlignMask: 0xfff },
      { name: '0000:05:00.0', dmaMask: 64, coherentDmaMask: 64, untrusted: true },
    ],
  },
  'confidential-vm': {
    memory: '8G',
    swiotlb: { force: true },
    devices: [
      { name: 'virtio0', dmaMask: 64, coherentDmaMask: 64 },
      { name: 'virtio1', dmaMask: 64, coherentDmaMask: 64 },
    ],
  },
  'embedded-32bit': {
    memory: '6G',
    arch: 'arm64',
    devices: [{ name: 'dma-engine@ff000000', bus: 'platform', dmaMask: 32, coherentDmaMask: 32 }],
  },
};

/** A preset by name. @throws KernelError EINVAL naming the known presets. */
export function preset(name: string): MachineConfig {
  const p = PRESETS[name];
  if (p === undefined) throw new KernelError(EINVAL, 'preset', `unknown preset ${JSON.stringify(name)} (one of ${Object.keys(PRESETS).join(', ')})`, 'name');
  return p;
}
