// Solves the waiting room's challenges with the official ALTCHA library, as a fan's
// browser would (WebCrypto PBKDF2, on the page's own thread), and times each solve.
// scripts/bench-pow-browser calls window.solveRounds through WebDriver.
import { solveChallenge } from './node_modules/altcha-lib/dist/esm/v2/pow.js';
import { deriveKey } from './node_modules/altcha-lib/dist/esm/v2/algorithms/web/pbkdf2.js';

window.solveRounds = async (rounds) => {
  for (const round of rounds) {
    for (const challenge of round.challenges) {
      const started = performance.now();
      const solution = await solveChallenge({ challenge, deriveKey });
      round.solve_ms.push(performance.now() - started);
      round.proofs.push(btoa(JSON.stringify({ challenge, solution })));
    }
  }
  return rounds;
};
window.solverReady = true;
