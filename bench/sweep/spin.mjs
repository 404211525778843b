// A control job for `npm run bench sweep`: 250 ms of a spin on the clock, touching no memory, so
// the sweep's own scaling shows apart from the machine's.
export const columns = ['spins'];
export default function spin() {
  const t = Date.now();
  let spins = 0;
  while (Date.now() - t < 250) spins++;
  return { spins: spins > 0 ? 1 : 0 };
}
