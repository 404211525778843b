/**
 * @module bench/native/native
 * The native C yardstick for the coalescing benchmark: builds `coalesce.c` with the system's C compiler (once, cached
 * as `coalesce.bin` beside it, rebuilt when the source is newer), runs it, and parses its JSON lines. The benchmark
 * prints dmasim's figures next to these, measured in the same run, because absolute times drift on shared machines.
 *
 * Run directly for a Markdown table: `node --import tsx bench/native/native.ts [N LAYOUT MAX_SEGMENT MODE]`.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
// Compiled into .build/bench/native/ by `npm run build`, this module still finds the C source and
// caches the binary in the source tree's bench/native/.
const COMPILED = /[\\/]\.build[\\/]bench[\\/]native$/;
const HERE = dirname(fileURLToPath(import.meta.url)).replace(COMPILED, `${sep}bench${sep}native`);
/** The C source of the yardstick. */
export const NATIVE_SOURCE = join(HERE, 'coalesce.c');
/** Where the compiled yardstick is cached (gitignored). */
export const NATIVE_BINARY = join(HERE, 'coalesce.bin');
const LAYOUTS = ['contiguous', 'scattered', 'runs'];
const MODES = ['oneshot', 'append512'];
const CFLAGS = ['-O2', '-Wall', '-Wextra'];
/** Run a program to completion. Rejects only when it cannot be started (e.g. ENOENT). */
function exec(file, args) {
    return new Promise((resolvePromise, reject) => {
        const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
        const out = [];
        const err = [];
        child.stdout.on('data', (b) => out.push(b));
        child.stderr.on('data', (b) => err.push(b));
        child.on('error', reject);
        child.on('close', (code) => resolvePromise({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    });
}
async function mtimeMs(path) {
    try {
        return (await stat(path)).mtimeMs;
    }
    catch {
        return null;
    }
}
/** Compile `source` to `output` via a temporary file and an atomic rename (safe against concurrent builders). */
async function compileTo(cc, output) {
    const tmp = `${output}.${process.pid}.tmp.bin`;
    let r;
    try {
        r = await exec(cc, [...CFLAGS, '-o', tmp, NATIVE_SOURCE]);
    }
    catch {
        return 'no-compiler'; // spawn failed: no `cc` on PATH
    }
    if (r.code !== 0) {
        await rm(tmp, { force: true });
        process.stderr.write(`bench/native: '${cc}' could not build coalesce.c (exit ${r.code}):\n${r.stderr}`);
        return 'failed';
    }
    await rename(tmp, output);
    return 'ok';
}
let binaryPromise;
/**
 * Path of an up-to-date yardstick binary, building it if needed; null when there is no working C compiler.
 * The compiler is `$CC` or `cc`. Falls back to a temporary directory when `bench/native/` is not writable.
 */
export function nativeBinary() {
    binaryPromise ??= (async () => {
        const src = await mtimeMs(NATIVE_SOURCE);
        if (src === null)
            throw new Error(`bench/native: missing ${NATIVE_SOURCE}`);
        const bin = await mtimeMs(NATIVE_BINARY);
        if (bin !== null && bin >= src)
            return NATIVE_BINARY;
        const cc = process.env['CC'] ?? 'cc';
        let out = NATIVE_BINARY;
        try {
            await access(HERE, constants.W_OK);
        }
        catch {
            // bench/native/ not writable: build into a private temporary directory instead.
            out = join(await mkdtemp(join(tmpdir(), 'dmasim-native-')), 'coalesce.bin');
        }
        return (await compileTo(cc, out)) === 'ok' ? out : null;
    })();
    return binaryPromise;
}
function checkArgs(a) {
    const u32 = (v) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
    if (!u32(a.n) || a.n === 0)
        throw new RangeError(`runNative: n must be a whole number in [1, 2^32), got ${a.n}`);
    if (!u32(a.maxSegment) || a.maxSegment < 4096) {
        throw new RangeError(`runNative: maxSegment must be a whole number in [4096, 2^32), got ${a.maxSegment}`);
    }
    if (!LAYOUTS.includes(a.layout))
        throw new RangeError(`runNative: layout must be one of ${LAYOUTS.join(', ')}`);
    if (!MODES.includes(a.mode))
        throw new RangeError(`runNative: mode must be one of ${MODES.join(', ')}`);
    return [String(a.n), a.layout, String(a.maxSegment), a.mode];
}
function parseRow(line) {
    const o = JSON.parse(line);
    const num = (k) => {
        const v = o[k];
        if (typeof v !== 'number' || !Number.isFinite(v))
            throw new Error(`bench/native: bad '${k}' in ${line}`);
        return v;
    };
    const layout = o['layout'];
    const mode = o['mode'];
    if (typeof layout !== 'string' || !LAYOUTS.includes(layout) || typeof mode !== 'string' || !MODES.includes(mode)) {
        throw new Error(`bench/native: bad layout/mode in ${line}`);
    }
    return {
        n: num('n'),
        layout: layout,
        maxSegment: num('max_segment'),
        mode: mode,
        nsPerPage: num('ns_per_page'),
        nents: num('nents'),
    };
}
/**
 * Run the native yardstick: one case when `args` is given, otherwise the full matrix (N ∈ {4096, 262144, 1048576} ×
 * 3 layouts × max_segment ∈ {UINT_MAX, 65536} × 2 modes, about 10 s).
 * @returns the rows, or null when no C compiler is available (never throws for that).
 * @throws RangeError on invalid args; Error when the binary fails (its self-test or a table check did not pass).
 * @example const rows = await runNative({ n: 1 << 20, layout: 'runs', maxSegment: 65536, mode: 'oneshot' });
 */
export async function runNative(args) {
    const argv = args === undefined ? [] : checkArgs(args);
    const bin = await nativeBinary();
    if (bin === null)
        return null;
    const r = await exec(bin, argv);
    if (r.code !== 0)
        throw new Error(`bench/native: coalesce.bin ${argv.join(' ')} exited with ${r.code}: ${r.stderr}`);
    return r.stdout
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map(parseRow);
}
function fmt(v) {
    return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
async function main(argv) {
    let args;
    if (argv.length === 4) {
        const [n, layout, seg, mode] = argv;
        args = { n: Number(n), layout, maxSegment: seg === 'UINT_MAX' ? 0xffffffff : Number(seg), mode };
    }
    else if (argv.length !== 0) {
        process.stderr.write('usage: native.ts [N LAYOUT MAX_SEGMENT MODE]\n');
        process.exitCode = 2;
        return;
    }
    const rows = await runNative(args);
    if (rows === null) {
        process.stdout.write('no C compiler found: native yardstick skipped\n');
        return;
    }
    const lines = ['| n | layout | max_segment | mode | ns/page | entries |', '|---|---|---|---|---|---|'];
    for (const r of rows) {
        const seg = r.maxSegment === 0xffffffff ? 'UINT_MAX' : String(r.maxSegment);
        lines.push(`| ${r.n} | ${r.layout} | ${seg} | ${r.mode} | ${fmt(r.nsPerPage)} | ${r.nents} |`);
    }
    process.stdout.write(`${lines.join('\n')}\n`);
}
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
    await main(process.argv.slice(2));
}
//# sourceMappingURL=native.js.map