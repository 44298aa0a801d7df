#!/usr/bin/env bash
# The Range / legacy Content-Range fuzz of test/ranges/fuzz.test.ts, long: 100,000 cases by default
# (CI runs 10,000), against serveImage in a bare http server and the demo process, every answer
# checked against the reference model. Prints the seed, the time and the cases per second.
#
#   bench/fuzz.sh                      (from anywhere; see bench/README.md)
#   FUZZ_RUNS=20000 bench/fuzz.sh      fewer cases
#   FUZZ_SEED=123456 bench/fuzz.sh     replay a seed (the same seed draws the same cases)
#
# Exits with jest's status: 0 when every case matched the model, 1 otherwise (fast-check then
# prints the shrunk counterexample and the seed and path to replay it).
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

FUZZ_RUNS=${FUZZ_RUNS:-100000}
# A fresh 30-bit seed unless one is given, chosen here so that it can be printed whatever happens.
FUZZ_SEED=${FUZZ_SEED:-$(((RANDOM << 15) | RANDOM))}
[[ $FUZZ_RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench/fuzz.sh: FUZZ_RUNS must be a whole number >= 1, got '$FUZZ_RUNS'" >&2; exit 2; }
[[ $FUZZ_SEED =~ ^-?[0-9]+$ ]] || { echo "bench/fuzz.sh: FUZZ_SEED must be an integer, got '$FUZZ_SEED'" >&2; exit 2; }

command -v node >/dev/null || { echo "bench/fuzz.sh: node is needed (Node.js >= 20)" >&2; exit 2; }
[[ -d $ROOT/node_modules ]] || { echo "bench/fuzz.sh: run npm ci in $ROOT first" >&2; exit 2; }
if [[ ! -f $ROOT/dist/server/cli.js ]]; then
  echo "  .. dist/ missing: npm run build" >&2
  (cd "$ROOT" && npm run build >&2)
fi

REPORT=$(mktemp "${TMPDIR:-/tmp}/glance-edge-fuzz.XXXXXX")
trap 'rm -f "$REPORT"' EXIT

printf 'fuzz: %s cases, seed %s\n' "$FUZZ_RUNS" "$FUZZ_SEED"
rc=0
(cd "$ROOT" && FUZZ_RUNS=$FUZZ_RUNS FUZZ_SEED=$FUZZ_SEED FUZZ_REPORT=$REPORT \
  npx jest --runTestsByPath test/ranges/fuzz.test.ts --reporters default) || rc=$?

if [[ -s $REPORT ]]; then
  read -r runs seed seconds rate <"$REPORT"
  printf '\nfuzz: %s cases in %s s = %s cases/s, seed %s\n' "$runs" "$seconds" "$rate" "$seed"
  printf 'cases by kind:\n'
  tail -n +2 "$REPORT"
else
  printf '\nfuzz: FAILED (seed %s; replay with FUZZ_SEED=%s FUZZ_RUNS=%s bench/fuzz.sh)\n' "$FUZZ_SEED" "$FUZZ_SEED" "$FUZZ_RUNS"
fi
exit "$rc"
