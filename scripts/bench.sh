#!/usr/bin/env bash
# make bench: builds, boots, time to first failure for the harness's workers,
# the generic modes (no delay patch: real SMP, KCSAN, slot reuse) and
# stress/stress-ng as peers, throughput, and a 30-min false-positive soak per
# mode, on the Debian 6.1 line (bench.json); then the Debian 6.12 line
# (bench-6.12.json): its cold build, time to first failure widened, the
# patched kernel's 30-min soaks (boot time, writeback per second) and the
# time to verdict of 'compare --source debian:6.12 --widen' (82 min here with
# --reps 3, beside other work; README, "How fast it finds the race").
# The widened rows and peers took 75 min here (TCG, 2 cores,
# --build-reps 0, 10-min soak); a generic run takes 12 to 18 min, two soaks
# at once 55 min; --rows REGEXP picks rows. Each cold build rep
# (default 1) adds a cold build of both kernels (13 to 15.5 min measured
# here, README). BENCH_FLAGS adds flags to the 6.1 bench
# (e.g. BENCH_FLAGS="--reps 3 --soak 4m --build-reps 0"), BENCH_612_FLAGS
# to the 6.12 one; BENCH_LINES="6.1" or "6.12" runs one line only.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ -x bin/harness ] || go build -o bin/harness ./harness
lines=${BENCH_LINES:-6.1 6.12}
for line in $lines; do
	case $line in
	6.1)
		# shellcheck disable=SC2086
		./bin/harness bench ${BENCH_FLAGS:-}
		;;
	6.12)
		# shellcheck disable=SC2086
		./bin/harness bench --source debian:6.12 --json bench-6.12.json \
			--rows '^(harness workers, unpatched widened|soak: patched (widened|not widened, 2-CPU guest))$' \
			${BENCH_612_FLAGS:-}
		;;
	*)
		echo "bench.sh: BENCH_LINES: unknown line $line (known: 6.1 6.12)" >&2
		exit 2
		;;
	esac
done
