#!/usr/bin/env bash
# scripts/bisect-demo-tree.sh DIR
# Makes a small git history over the Debian 6.1 source that make bisect can
# search (make bisect-demo does, and so does the e2e bisect test): a base
# commit and ten commits. Commit 4 adds an unrelated WARNING at boot, commit
# 5 takes it out but does not build, commit 6 mends it, commit 7 reverses
# the zswap writeback fix, the others are harmless. Prints GOOD=, BAD= and
# CULPRIT= lines.
#
# Each commit has its own fixed date, a minute after the one before. git
# bisect orders commits of the same second by hash, so with the dates of
# a fast script (all one second) the steps it picks after a skip changed
# from one history to the next, and a skip was tested in some histories
# only. With these dates git bisect tests 5 (skip), 7 (bad), 4 (skip),
# then 2, 3 and 6 (good), every time.
set -euo pipefail
dir=${1:?usage: scripts/bisect-demo-tree.sh DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
[ ! -e "$dir" ] || { echo "bisect-demo-tree: $dir exists; give a new directory" >&2; exit 2; }
# The harness's cache, found as it finds it (harness/cache).
if [ -n "${ZSWAPRACE_CACHE:-}" ]; then cache=$ZSWAPRACE_CACHE
elif [[ "${XDG_CACHE_HOME:-}" == /* ]]; then cache=$XDG_CACHE_HOME/zswaprace
elif [[ "${HOME:-}" == /* ]]; then cache=$HOME/.cache/zswaprace
else cache=${TMPDIR:-/tmp}/zswaprace-$(id -u); fi
src=$(ls -d "$cache"/src/debian-6.1-*/linux-source-6.1 2>/dev/null | head -1)
if [ -z "$src" ] && [ -x "$root/bin/harness" ]; then
  echo "bisect-demo-tree: the Debian 6.1 source is not unpacked in $cache yet: running bin/harness build --widen, which unpacks it (and builds the demo's two kernels: about 15 min on 2 cores the first time)" >&2
  "$root/bin/harness" build --widen >&2 || exit 2
  src=$(ls -d "$cache"/src/debian-6.1-*/linux-source-6.1 2>/dev/null | head -1)
fi
if [ -z "$src" ]; then
  echo "bisect-demo-tree: the Debian 6.1 source is not unpacked in $cache: run 'make build' and 'bin/harness build --widen' (or make demo) once first" >&2
  exit 2
fi
export GIT_AUTHOR_NAME=zswaprace GIT_AUTHOR_EMAIL=zswaprace@example.invalid
export GIT_COMMITTER_NAME=zswaprace GIT_COMMITTER_EMAIL=zswaprace@example.invalid
dated() { # dated N: the date of commit N
  export GIT_AUTHOR_DATE=$(printf '2026-01-01T00:%02d:00Z' "$1") GIT_COMMITTER_DATE=$(printf '2026-01-01T00:%02d:00Z' "$1")
}
echo "bisect-demo-tree: copying $src to $dir" >&2
cp -a "$src" "$dir"
cd "$dir"
git init -q
# No automatic gc: it would go on repacking in the background after this
# script has returned, and the e2e test checks that nothing writes into
# the tree while make bisect runs.
git config gc.auto 0
# -f: Debian's .gitignore ignores everything at the top level.
git -c core.looseCompression=0 add -f -A
dated 0
git commit -q -m "base: Debian 6.1 source"
good=$(git rev-parse HEAD)
cp mm/page_io.c "$dir.page_io.c.orig"
trap 'rm -f "$dir.page_io.c.orig"' EXIT
for i in $(seq 1 10); do
  echo "harmless change $i" > "Documentation/zswaprace-note-$i.txt"
  msg="docs: harmless change $i"
  case $i in
    4)
      cp "$dir.page_io.c.orig" mm/page_io.c
      cat >> mm/page_io.c <<'EOF'

#include <linux/init.h>
static int __init zswaprace_boot_noise(void)
{
	WARN(1, "zswaprace test: an unrelated warning at boot\n");
	return 0;
}
late_initcall(zswaprace_boot_noise);
EOF
      msg="mm: page_io: warn at boot (unrelated noise)" ;;
    6) cp "$dir.page_io.c.orig" mm/page_io.c ;;
    5)
      cp "$dir.page_io.c.orig" mm/page_io.c
      printf '\n#error "zswaprace test: this commit does not build"\n' >> mm/page_io.c
      msg="mm: page_io: a commit that does not build" ;;
    7)
      patch -s -p1 -R -i "$root/patches/zswap-writeback-race-fix.patch"
      msg="mm: zswap: drop the writeback recheck (reintroduces the race)" ;;
  esac
  git add -f -A
  dated "$i"
  git commit -q -m "$msg"
  [ "$i" != 7 ] || culprit=$(git rev-parse HEAD)
done
echo "GOOD=$good"
echo "BAD=$(git rev-parse HEAD)"
echo "CULPRIT=$culprit"
