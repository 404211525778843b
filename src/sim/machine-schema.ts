/**
 * @module sim/machine-schema
 * The JSON Schema of a machine file (machine.json: {@link MachineConfig} as data), published with
 * the package as `dmasim/machine.schema.json` for editors, and enforced by {@link parseMachineConfig}.
 */
import { SWIOTLB_PARAM_SYNTAX } from '../dma/swiotlb/boot.ts';

const SIZE_PATTERN = '^\\s*\\d+(\\.\\d+)?\\s*([KMGTPkmgtp](i?[Bb])?|[Bb])?\\s*$';

/** A byte count: a whole number, or a string such as '16G', '64K', '1.5M'. */
const size = {
  description: "Bytes: a whole number, or a size string such as '16G', '256K', '1.5MiB'.",
  oneOf: [
    { type: 'integer', minimum: 0 },
    { type: 'string', pattern: SIZE_PATTERN },
  ],
} as const;

const u32 = { type: 'integer', minimum: 0, maximum: 0xffffffff } as const;
const maskBits = { type: 'integer', minimum: 0, maximum: 64 } as const;
const pageRange = { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 2, maxItems: 2 } as const;

/**
 * The schema (JSON Schema draft-07). Unknown keys anywhere are errors: a misspelt key would
 * otherwise leave a default in place silently.
 * @example
 * import { MACHINE_SCHEMA } from 'dmasim';
 * MACHINE_SCHEMA.required // ['memory']
 */
export const MACHINE_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://dmasim.invalid/machine.schema.json',
  title: 'dmasim machine',
  description: 'A simulated machine: RAM, swiotlb, IOMMU, dma-debug and devices (dmasim describe machine.json).',
  type: 'object',
  additionalProperties: false,
  required: ['memory'],
  properties: {
    $schema: { type: 'string', description: 'The schema this file follows (for editors).' },
    memory: {
      description: "RAM: a size from address 0 ('16G'), or ranges with holes between them.",
      oneOf: [
        size,
        {
          type: 'array', minItems: 1,
          items: { type: 'object', additionalProperties: false, required: ['start', 'size'], properties: { start: size, size } },
        },
      ],
    },
    deviceMemory: {
      description: 'Device memory (PCI BARs, MMIO) that answers bus accesses but is not RAM: peer-to-peer targets for dma_map_resource. Anywhere below 2^52 outside RAM.',
      type: 'array',
      items: { type: 'object', additionalProperties: false, required: ['start', 'size'], properties: { start: size, size, name: { type: 'string', minLength: 1 } } },
    },
    seed: { type: 'integer', minimum: 0, maximum: 0xffffffff, description: 'Seed for every random choice (default 1).' },
    name: { type: 'string', minLength: 1, description: 'Name used in logs (default m<N>).' },
    cpus: { type: 'integer', minimum: 1, maximum: 1024, description: 'Simulated CPUs (default 2).' },
    lowReserve: { ...size, description: 'Boot-time reservation at the bottom of RAM (default 1 MiB).' },
    arch: { enum: ['x86_64', 'arm64'], description: "x86_64 (default, coherent DMA) or arm64 (128-byte cache lines; devices non-coherent unless they say otherwise)." },
    trace: { type: 'boolean', description: 'Record the event trace (default false).' },
    accessChecks: { type: 'boolean', description: 'Device-access and CPU-ownership checks (default true).' },
    fragment: {
      type: 'object', additionalProperties: false, description: 'Fragment free memory after boot.',
      properties: {
        level: { type: 'number', minimum: 0, maximum: 1 },
        run: pageRange,
        gap: pageRange,
        seed: { type: 'integer', minimum: 0 },
      },
    },
    swiotlb: {
      description: 'The swiotlb bounce pool; false for none (default: 64 MiB when RAM reaches above 4 GiB).',
      oneOf: [
        { const: false },
        { type: 'string', pattern: `^\\s*${SWIOTLB_PARAM_SYNTAX}\\s*$`, description: "The kernel's swiotlb= parameter: '<slots>[,<areas>][,force|noforce]'." },
        {
          type: 'object', additionalProperties: false,
          properties: { size, at: { ...size, description: 'Place the pool at this physical address (free RAM), as a reserved-memory region would.' }, force: { type: 'boolean', description: 'swiotlb=force: bounce every streaming mapping.' }, areas: { type: 'integer', minimum: 0, description: 'Areas (0 → 1, else rounded up to a power of two); default the CPU count.' } },
        },
      ],
    },
    iommu: {
      description: 'An IOMMU in front of the devices; false for none (the default).',
      oneOf: [
        { const: false },
        {
          type: 'object', additionalProperties: false,
          properties: {
            mode: { enum: ['lazy', 'strict', 'passthrough'] },
            format: { enum: ['arm-lpae', 'vtd'], description: 'IO page-table format: arm-lpae (default) or vtd (Intel VT-d second stage; 39 or 48 bits).' },
            addressWidth: { enum: [39, 48, 52], description: 'Input (IOVA) width: arm-lpae 39/48/52, vtd 39/48.' },
            granule: { enum: [4096, 16384, 65536] },
            iotlbSize: { type: 'integer', minimum: 1 },
            singleQueue: { type: 'boolean' },
            faultLogSize: { type: 'integer', minimum: 1 },
            forcedac: { type: 'boolean' },
            outputWidth: { type: 'integer', minimum: 32, maximum: 52, description: 'Output (physical) address bits of the page tables (SMMU OAS, VT-d MGAW). Default: arm-lpae 48, or 52 with RAM past 2^48; vtd 52.' },
          },
        },
      ],
    },
    dmaDebug: {
      description: 'CONFIG_DMA_API_DEBUG: on by default; false for off, or options.',
      oneOf: [
        { type: 'boolean' },
        {
          type: 'object', additionalProperties: false,
          properties: {
            off: { type: 'boolean' },
            entries: { type: 'integer', minimum: 1 },
            driverFilter: { type: 'string' },
            swiotlbActive: { type: 'boolean' },
          },
        },
      ],
    },
    devices: {
      type: 'array',
      items: {
        type: 'object', additionalProperties: false, required: ['name'],
        properties: {
          name: { type: 'string', minLength: 1, description: "dev_name(), e.g. '0000:01:00.0'." },
          bus: { enum: ['pci', 'platform'] },
          dmaMask: { ...maskBits, description: 'Streaming DMA mask in bits (default 32; 0: no dma_mask pointer).' },
          coherentDmaMask: { ...maskBits, description: 'Coherent DMA mask in bits (default 32).' },
          busDmaLimit: { type: 'integer', minimum: 0, description: 'bus_dma_limit in bytes, 0 for none.' },
          maxSegmentSize: { ...u32, description: 'dma_parms.max_segment_size (default 65536).' },
          segmentBoundaryMask: { type: 'integer', minimum: 0, maximum: 2 ** 64 - 1, description: 'dma_parms.segment_boundary_mask (PCI default 0xffffffff).' },
          minAlignMask: { ...u32, description: 'dma_parms.min_align_mask (default 0).' },
          hasDmaParms: { type: 'boolean' },
          coherent: { type: 'boolean' },
          untrusted: { type: 'boolean' },
          iommu: { type: 'boolean', description: 'Behind the IOMMU (default true when there is one).' },
          iommuGroup: { type: 'integer', minimum: 0 },
        },
      },
    },
  },
} as const;
