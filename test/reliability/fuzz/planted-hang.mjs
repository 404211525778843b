// A driver with a planted hang at call 1 (fuzz-exports.test.ts checks that its watchdog reports it
// and resumes after it): same protocol as driver.ts.
const args = process.argv.slice(2);
const from = Number(args[args.indexOf('--from') + 1] ?? 0) || 0;
for (let i = from; i < 4; i++) {
  process.stdout.write(`${JSON.stringify({ at: i, name: `call(${i})` })}\n`);
  if (i === 1) for (;;) { /* hang */ }
}
process.stdout.write(`${JSON.stringify({ done: 4 })}\n`);
