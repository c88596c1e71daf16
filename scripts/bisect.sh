#!/usr/bin/env bash
# make bisect TREE=path GOOD=rev BAD=rev [WIDEN=1]
# Checks both ends, measures the bad end's failure rate (which sets the runs
# per step), runs 'git bisect run' with the harness, and names the culprit.
# Environment: STEP_DURATION (stress per run, default 60s), MEASURE_RUNS
# (runs at the bad end; default: run until 2 failures, however long this
# machine takes, within MEASURE_BUDGET, default 20m), MISS (chance per step of calling a bad
# commit good, default 0.05), BISECT_FLAGS (more bisect-run flags), OUT.
set -euo pipefail
tree=$1 good=$2 bad=$3 widen=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
# git bisect run runs each step from the tree's top directory: paths must be absolute.
tree=$(cd "$tree" && pwd) || { echo "bisect: TREE=$1 is not a directory" >&2; exit 2; }
export ZSWAPRACE_ROOT=$root PATH=/usr/local/go/bin:$PATH
git -C "$tree" rev-parse --verify -q "$good^{commit}" >/dev/null || { echo "bisect: GOOD=$good is not a commit in $tree" >&2; exit 2; }
git -C "$tree" rev-parse --verify -q "$bad^{commit}" >/dev/null || { echo "bisect: BAD=$bad is not a commit in $tree" >&2; exit 2; }
[ -z "$(git -C "$tree" status --porcelain --untracked-files=no)" ] || { echo "bisect: $tree has uncommitted changes; commit or stash them first" >&2; exit 2; }

tmp=$(mktemp -d)
bin=$tmp/harness
(cd "$root" && go build -o "$bin" ./harness)
out=${OUT:-$root/out/bisect-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
miss=${MISS:-0.05}
flags=(--tree "$tree" --out "$out" --duration "${STEP_DURATION:-60s}" --miss "$miss")
if [ -n "$widen" ] && [ "$widen" != 0 ]; then flags+=(--widen); fi
# shellcheck disable=SC2206
flags+=(${BISECT_FLAGS:-})

measure=(--measure-budget "${MEASURE_BUDGET:-20m}")
if [ -n "${MEASURE_RUNS:-}" ]; then measure=(--runs "$MEASURE_RUNS"); fi
echo "bisect: checking that the bad end $bad fails (${MEASURE_RUNS:-until 2 failures} runs)"
rc=0; "$bin" bisect-run "${flags[@]}" --rev "$bad" "${measure[@]}" --measure --rate-file "$out/bad-rate" || rc=$?
case $rc in
  1) ;;
  0) echo "bisect: the bad end $bad did not fail: nothing to bisect. Try WIDEN=1, a longer MEASURE_BUDGET or STEP_DURATION." >&2; exit 1 ;;
  125) echo "bisect: the bad end $bad could not be built or booted (exit 125): see the log above" >&2; exit 1 ;;
  *) echo "bisect: the harness failed at the bad end $bad (exit $rc): see the log above" >&2; exit 1 ;;
esac
rate=$(cat "$out/bad-rate")
echo "bisect: the bad end fails at $rate per hour of stress"

echo "bisect: checking that the good end $good does not fail"
rc=0; "$bin" bisect-run "${flags[@]}" --rev "$good" --bad-rate "$rate" || rc=$?
case $rc in
  0) ;;
  1) echo "bisect: the good end $good fails too: pick an older GOOD" >&2; exit 1 ;;
  125) echo "bisect: the good end $good could not be built, booted or judged (exit 125): see the log above" >&2; exit 1 ;;
  *) echo "bisect: the harness failed at the good end $good (exit $rc): see the log above" >&2; exit 1 ;;
esac

git -C "$tree" bisect start "$bad" "$good" >/dev/null
trap 'git -C "$tree" bisect reset -q >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
# A Go panic exits 2, which git would take for "bad": make it abort instead.
step='rc=0; "$@" || rc=$?; if [ "$rc" -eq 2 ]; then echo "bisect: the harness crashed: aborting" >&2; exit 128; fi; exit "$rc"'
rc=0; git -C "$tree" bisect run bash -c "$step" step "$bin" bisect-run "${flags[@]}" --bad-rate "$rate" || rc=$?
git -C "$tree" bisect log > "$out/bisect.log"
if [ $rc -ne 0 ]; then
  echo "bisect: git bisect run stopped (exit $rc); log in $out/bisect.log" >&2
  exit 1
fi
culprit=$(git -C "$tree" rev-parse refs/bisect/bad)
# Bad verdicts are certain (a failure was seen); each good verdict, the good
# end's included, could hide a failure with the chance its step reported.
confidence=1 goods=0
for sha in "$(git -C "$tree" rev-parse "$good")" $(sed -n 's/^git bisect good \([0-9a-f]*\).*/\1/p' "$out/bisect.log"); do
  chance=$(sed -n 's/.*"chance_bad_called_good": \([0-9.e+-]*\).*/\1/p' "$out/step-${sha:0:12}/step.json" 2>/dev/null)
  confidence=$(awk -v a="$confidence" -v c="${chance:-$miss}" 'BEGIN { printf "%.4f", a * (1 - c) }')
  goods=$((goods + 1))
done
echo
echo "culprit: $culprit"
git -C "$tree" log -1 --format='  %h %s' "$culprit"
echo "confidence: $confidence that no good verdict hid a failure ($goods good step(s), the good end included; each kept under $miss by its runs; bad steps are certain)"
echo "logs: $out"
