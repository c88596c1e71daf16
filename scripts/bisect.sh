#!/usr/bin/env bash
# make bisect TREE=path GOOD=rev BAD=rev [WIDEN=1]
# Measures the bad end until it has failed MEASURE_FAILURES times (default
# 4, within MEASURE_BUDGET, default 20m), checks the good end, runs 'git
# bisect run' with the harness in a clone of its own (the tree, its HEAD,
# index and refs are never touched), and prints the culprit with a table of
# the steps and the chance that it is the wrong one.
# Environment: STEP_DURATION (stress per run, default 60s), MISS (chance of
# naming a wrong culprit, default 0.05), MEASURE_FAILURES, MEASURE_BUDGET,
# MEASURE_RUNS (a fixed number of runs at the bad end instead), BISECT_FLAGS
# (more bisect-run flags), OUT (log directory).
set -euo pipefail
tree=$1 good=$2 bad=$3 widen=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
tree=$(cd "$tree" && pwd) || { echo "bisect: TREE=$1 is not a directory" >&2; exit 2; }
export ZSWAPRACE_ROOT=$root PATH=/usr/local/go/bin:$PATH
good=$(git -C "$tree" rev-parse --verify -q "$good^{commit}") || { echo "bisect: GOOD=$2 is not a commit in $tree" >&2; exit 2; }
bad=$(git -C "$tree" rev-parse --verify -q "$bad^{commit}") || { echo "bisect: BAD=$3 is not a commit in $tree" >&2; exit 2; }
git -C "$tree" merge-base --is-ancestor "$good" "$bad" || { echo "bisect: GOOD=$2 is not an ancestor of BAD=$3" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=$tmp/harness
(cd "$root" && go build -o "$bin" ./harness)
out=${OUT:-$root/out/bisect-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
flags=(--tree "$tree" --out "$out" --duration "${STEP_DURATION:-60s}")
if [ -n "$widen" ] && [ "$widen" != 0 ]; then flags+=(--widen); fi
# Split on spaces, without expanding globs (a --crash-pattern is a regexp).
set -f
read -r -a extra <<<"${BISECT_FLAGS:-}"
set +f
flags+=("${extra[@]}")

measure=(--measure --bad-end "$out/bad-end.json" --good "$good" --wrong "${MISS:-0.05}"
  --measure-failures "${MEASURE_FAILURES:-4}" --measure-budget "${MEASURE_BUDGET:-20m}")
if [ -n "${MEASURE_RUNS:-}" ]; then measure+=(--runs "$MEASURE_RUNS"); fi
echo "bisect: measuring the bad end ${bad:0:12} until it has failed ${MEASURE_FAILURES:-4} times (budget ${MEASURE_BUDGET:-20m})"
rc=0; "$bin" bisect-run "${flags[@]}" --rev "$bad" "${measure[@]}" || rc=$?
case $rc in
  1) ;;
  0) echo "bisect: the bad end ${bad:0:12} did not fail: nothing to bisect. Try WIDEN=1, a longer MEASURE_BUDGET or STEP_DURATION." >&2; exit 1 ;;
  125) echo "bisect: the bad end ${bad:0:12} could not be built or booted, or failed only in other ways (exit 125): see the log above" >&2; exit 1 ;;
  *) echo "bisect: the harness failed at the bad end ${bad:0:12} (exit $rc): see the log above" >&2; exit 1 ;;
esac
flags+=(--bad-end "$out/bad-end.json")

echo "bisect: checking that the good end ${good:0:12} does not fail"
rc=0; "$bin" bisect-run "${flags[@]}" --rev "$good" || rc=$?
case $rc in
  0) ;;
  1) echo "bisect: the good end ${good:0:12} fails too: pick an older GOOD" >&2; exit 1 ;;
  125) echo "bisect: the good end ${good:0:12} could not be built, booted or judged (exit 125): see the log above" >&2; exit 1 ;;
  *) echo "bisect: the harness failed at the good end ${good:0:12} (exit $rc): see the log above" >&2; exit 1 ;;
esac

# git bisect keeps its state in the repository it runs in: run it in a
# clone that shares the tree's objects, without a checkout; each step
# builds the commit git names (BISECT_HEAD) in the harness's build clone.
ctl=$tmp/ctl
git clone -q --shared --no-checkout "$tree" "$ctl"
git -C "$ctl" bisect start --no-checkout "$bad" "$good" >/dev/null
# Only 0, 1 and 125 may reach git as verdicts: anything else (a crash exits
# 2, which git would take for "bad") aborts the bisection.
step='rc=0; "$@" --rev "$(git rev-parse BISECT_HEAD)" || rc=$?; case $rc in 0|1|125) exit "$rc" ;; esac; echo "bisect: the harness failed (exit $rc): aborting" >&2; exit 128'
set +e
git -C "$ctl" bisect run bash -c "$step" step "$bin" bisect-run "${flags[@]}" 2>&1 | tee "$tmp/run.out"
rc=${PIPESTATUS[0]}
set -e
git -C "$ctl" bisect log > "$out/bisect.log"
summary=(--out "$out" --good "$good" --bad "$bad" --log "$out/bisect.log")
if grep -q "is the first bad commit" "$tmp/run.out"; then
  summary+=(--culprit "$(git -C "$ctl" rev-parse refs/bisect/bad)")
elif grep -q "could be any of" "$tmp/run.out"; then
  summary+=(--unresolved "$(sed -n '/could be any of/,$p' "$tmp/run.out" | tr '\n' ' ')")
else
  echo "bisect: git bisect run stopped (exit $rc); log in $out/bisect.log" >&2
  exit 1
fi
echo
"$bin" bisect-summary "${summary[@]}"
echo "logs: $out (bisect.json has the table)"
grep -q "is the first bad commit" "$tmp/run.out"
