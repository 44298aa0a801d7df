/**
 * The seed of a random test, one rule for all of them:
 *
 * - the environment variable the test names (FUZZ_SEED, SEED, ...) when it is set, to replay a run;
 * - in CI (CI=true), a seed fixed by the commit under test: the same commit draws the same cases on
 *   every rerun, a new commit draws new ones (a fixed constant when git cannot name the commit);
 * - otherwise a fresh random seed each run.
 *
 * The seed is printed with the variable that replays it.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import path from 'node:path';
import { envInt } from './env';

const ROOT = path.resolve(__dirname, '..', '..');

/** Used in CI when git cannot name the commit (a tarball, no git installed). */
const NO_COMMIT = 'no commit';

let commit: string | undefined;

/** `git rev-parse HEAD` of the checkout, read once. */
function headCommit(): string {
  if (commit === undefined) {
    try {
      commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim() || NO_COMMIT;
    } catch {
      commit = NO_COMMIT;
    }
  }
  return commit;
}

export function inCi(): boolean {
  const ci = process.env['CI'];
  return ci === 'true' || ci === '1';
}

/** A 32-bit seed for the test whose replay variable is `name`, printed with where it came from. */
export function testSeed(name: string): number {
  let seed: number;
  let source: string;
  if (process.env[name] !== undefined && process.env[name] !== '') {
    seed = envInt(name, 0);
    source = 'from the environment';
  } else if (inCi()) {
    const head = headCommit();
    // The variable's name is mixed in so that two tests of one commit do not share a seed.
    seed = createHash('sha256').update(`${head}\n${name}`).digest().readInt32BE(0);
    source = head === NO_COMMIT ? 'fixed (CI, no git commit)' : `fixed by commit ${head.slice(0, 12)} (CI)`;
  } else {
    seed = randomInt(-0x80000000, 0x80000000);
    source = 'random';
  }
  process.stdout.write(`${name}=${seed} (${source}; replay with ${name}=${seed})\n`);
  return seed;
}
