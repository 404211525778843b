/**
 * bench/coalesce: segment coalescing, the kernel anchor's workload. For each N, layout,
 * max_segment and mode: median ns/page over ≥ 11 runs after warm-up, entries produced, bytes per
 * entry, and the ratio to the native C yardstick measured in the same run.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createContext } from '../src/core/context.js';
import { GFP_KERNEL } from '../src/mm/gfp.js';
import { PAGE_SIZE } from '../src/mm/constants.js';
import { arenaOf, SLOT_WORDS } from '../src/scatterlist/slots.js';
import { SgAppendTable, SgTable, sg_free_append_table, sg_free_table } from '../src/scatterlist/table.js';
import { sg_alloc_append_table_from_pages, sg_alloc_table_from_pages_segment } from '../src/scatterlist/from-pages.js';
import { median } from './util.js';
import { runNative } from './native/native.js';
export const LAYOUTS = ['contiguous', 'scattered', 'runs'];
export const MODES = ['oneshot', 'append512'];
export const UINT_MAX = 0xffffffff;
/** The anchor's page layouts, base pfn 0x100000; `runs` uses splitmix64 seeded 0x2545F4914F6CDD1D. */
export function makePages(layout, n) {
    const base = 0x100000;
    const pages = new Uint32Array(n);
    if (layout === 'contiguous')
        for (let i = 0; i < n; i++)
            pages[i] = base + i;
    else if (layout === 'scattered')
        for (let i = 0; i < n; i++)
            pages[i] = base + 2 * i;
    else {
        let state = 0x2545f4914f6cdd1dn;
        const mask = (1n << 64n) - 1n;
        const r = () => {
            state = (state + 0x9e3779b97f4a7c15n) & mask;
            let z = state;
            z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
            z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
            return z ^ (z >> 31n);
        };
        let pfn = base;
        let i = 0;
        while (i < n) {
            const run = 1 + Number(r() % 16n);
            for (let k = 0; k < run && i < n; k++)
                pages[i++] = pfn++;
            pfn += 1 + Number(r() % 16n);
        }
    }
    return pages;
}
/** One oneshot build: sg_alloc_table_from_pages_segment over all the pages. */
function buildOneshot(ctx, pages, n, maxSegment) {
    const sgt = new SgTable(ctx);
    if (sg_alloc_table_from_pages_segment(sgt, pages, n, 0, n * PAGE_SIZE, maxSegment, GFP_KERNEL) !== 0)
        throw new Error('build failed');
    return sgt;
}
/** One append512 build: 512-page calls, left_pages = pages still to come. */
function buildAppend512(ctx, pages, n, maxSegment) {
    const app = new SgAppendTable(ctx);
    for (let k = 0; k < n; k += 512) {
        const len = Math.min(512, n - k);
        const part = pages.subarray(k, k + len);
        if (sg_alloc_append_table_from_pages(app, part, len, 0, len * PAGE_SIZE, maxSegment, n - k - len, GFP_KERNEL) !== 0)
            throw new Error('append failed');
    }
    return app;
}
/**
 * Run one case: warm up, then time build + free runs and take the median ns/page.
 * Warm-up lasts until at least 2^24 pages have been built and 150 ms have passed: V8 compiles the
 * hot functions on a background thread while the first builds run, and the last tier arrives after
 * a few thousand calls (contiguous append512 at 1M pages measured 1.05-1.42 ns/page after 4 warm-up
 * builds, 0.71-0.90 after 30). Timed runs: at least `minRuns`, and until 200 ms have been timed, as
 * the native yardstick does. Each mode's build is a function of its own, as benchmark libraries
 * do: V8 would otherwise compile both modes' loops as one unit.
 */
export function runCase(n, layout, maxSegment, mode, minRuns = 11) {
    const pages = makePages(layout, n);
    const ctx = createContext('coalesce');
    const arena = arenaOf(ctx);
    let nents = 0;
    let bytesPerEntry = 0;
    const times = [];
    const warmPages = 2 ** 24;
    const warmNs = 150e6;
    const timedNs = 200e6;
    const start = process.hrtime.bigint();
    let warm = true;
    let built = 0;
    let timed = 0;
    for (let r = 0;; r++) {
        const t0 = process.hrtime.bigint();
        let sgt;
        let app = null;
        if (mode === 'oneshot') {
            sgt = buildOneshot(ctx, pages, n, maxSegment);
        }
        else {
            app = buildAppend512(ctx, pages, n, maxSegment);
            sgt = app.sgt;
        }
        if (r === 0) {
            nents = sgt.nents;
            // Slots the live table holds (chain links and pre-allocated slots included), 4 bytes a word.
            bytesPerEntry = (arena.liveSlots * SLOT_WORDS * 4) / nents;
        }
        if (app === null)
            sg_free_table(sgt);
        else
            sg_free_append_table(app);
        const t1 = process.hrtime.bigint();
        built += n;
        if (warm) {
            warm = built < warmPages || Number(t1 - start) < warmNs || r < 2;
            continue;
        }
        times.push(Number(t1 - t0) / n);
        timed += Number(t1 - t0);
        if (times.length >= minRuns && timed >= timedNs)
            break;
    }
    return { n, layout, maxSegment, mode, nsPerPage: median(times), nents, bytesPerEntry };
}
/**
 * runCase in a fresh process (bench/coalesce-case), started as this one was (same node flags and
 * loader, so it runs compiled code under node or sources under tsx alike).
 */
export function runCaseAlone(n, layout, maxSegment, mode) {
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    const script = fileURLToPath(new URL(`./coalesce-case${ext}`, import.meta.url));
    const out = execFileSync(process.execPath, [...process.execArgv, script, String(n), layout, String(maxSegment), mode], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    return JSON.parse(out.trim().split('\n').pop());
}
/**
 * The whole matrix (or the part asked for), each case in a process of its own, with native figures
 * beside it when a C compiler exists.
 */
export async function benchCoalesce(opts = {}) {
    const rows = [];
    const sizes = opts.sizes ?? [4096, 262144, 1048576];
    for (const n of sizes) {
        for (const layout of opts.layouts ?? LAYOUTS) {
            for (const maxSegment of opts.maxSegments ?? [UINT_MAX, 65536]) {
                for (const mode of opts.modes ?? MODES) {
                    const row = runCaseAlone(n, layout, maxSegment, mode);
                    let native;
                    if (opts.native !== false) {
                        const got = await runNative({ n, layout, maxSegment, mode });
                        native = got?.[0];
                    }
                    rows.push(native === undefined ? row : { ...row, native });
                }
            }
        }
    }
    return rows;
}
/** Markdown table of coalescing rows. */
export function coalesceTable(rows) {
    const head = '| N | layout | max_segment | mode | dmasim ns/page | native ns/page | ratio | entries | bytes/entry |\n|---|---|---|---|---|---|---|---|---|';
    const body = rows.map((r) => {
        const nat = r.native === undefined ? '—' : r.native.nsPerPage.toFixed(2);
        const ratio = r.native === undefined ? '—' : `${(r.nsPerPage / r.native.nsPerPage).toFixed(2)}×`;
        const ok = r.native === undefined || r.native.nents === r.nents ? '' : ` (native ${r.native.nents}!)`;
        return `| ${r.n} | ${r.layout} | ${r.maxSegment === UINT_MAX ? 'UINT_MAX' : r.maxSegment} | ${r.mode} | ${r.nsPerPage.toFixed(2)} | ${nat} | ${ratio} | ${r.nents}${ok} | ${r.bytesPerEntry.toFixed(1)} |`;
    });
    return [head, ...body].join('\n');
}
//# sourceMappingURL=coalesce.bench.js.map