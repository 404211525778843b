// A control for `npm run bench sweep`: run the scenario's jobs for seeds A..B in this process, no
// dmasim sweep involved (two of these side by side show what the machine gives two processes).
const [from, to] = process.argv.slice(2).map(Number);
const { default: job } = await import('./scenario.mjs');
for (let s = from; s <= to; s++) job({ seed: s });
