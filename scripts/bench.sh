#!/usr/bin/env bash
# make bench: builds, boots, time to first failure for the harness's workers,
# the generic modes (no delay patch: real SMP, KCSAN, slot reuse) and
# stress/stress-ng as peers, throughput, and a 30-min false-positive soak per
# mode. The widened rows and peers took 75 min here (TCG, 2 cores,
# --build-reps 0, 10-min soak); a generic run takes 12 to 18 min, two soaks
# at once 55 min; --rows REGEXP picks rows. Each cold build rep
# (default 1) adds a cold build of both kernels (13 to 15.5 min measured
# here, README). BENCH_FLAGS adds flags
# (e.g. BENCH_FLAGS="--reps 3 --soak 4m --build-reps 0").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
[ -x bin/harness ] || go build -o bin/harness ./harness
# shellcheck disable=SC2086
exec ./bin/harness bench ${BENCH_FLAGS:-}
