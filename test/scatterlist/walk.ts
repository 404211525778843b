/** Test helpers: walk a dmasim table the same way model.ts walks the model. */
import { type Scatterlist, sg_is_chain, sg_is_last, sg_chain_ptr, type SgTable } from '../../src/index.ts';

export function walk(sgt: SgTable): { entries: Array<[number, number, number]>; layout: string } {
  const entries: Array<[number, number, number]> = [];
  let layout = '';
  let sg: Scatterlist | null = sgt.sgl;
  let guard = 0;
  while (sg !== null && guard++ < 10_000_000) {
    if (sg_is_chain(sg)) { layout += 'L'; sg = sg_chain_ptr(sg); continue; }
    entries.push([sg.page, sg.offset, sg.length]);
    layout += sg_is_last(sg) ? 'E' : 'd';
    if (sg_is_last(sg)) break;
    sg = sg.at(1);
  }
  return { entries, layout };
}

export const P = 4096;
export const UINT_MAX = 0xffffffff;
