#!/bin/sh
# Creates a benchmark tree for input hashing: 10,000 files, 100 MB in total, spread over
# 100 directories, with a .gitignore and some ignored files the walk must skip; then times
# the baselines the stat cache competes with (a full re-read with sha256sum, and a bare
# stat walk with find).
#
# usage: scripts/bench-hash.sh [DIR]   (default: a new directory under ${TMPDIR:-/tmp})
set -eu

dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/sanctuary-bench.XXXXXX")}
files=10000
dirs=100
size=10240   # 10,000 x 10 KiB = 100 MB

mkdir -p "$dir"
printf '*.log\ntarget/\n' >"$dir/.gitignore"
per_dir=$((files / dirs))
i=0
while [ "$i" -lt "$dirs" ]; do
    sub="$dir/src/m$i"
    mkdir -p "$sub"
    # One random blob per directory, sliced into files: fast, and no two files alike.
    head -c $((per_dir * size)) /dev/urandom >"$sub/.blob"
    (
        cd "$sub"
        split -a 3 -d -b "$size" .blob f
        rm .blob
        for f in f*; do mv "$f" "$f.dat"; done
        echo noise >ignored.log
    )
    i=$((i + 1))
done
mkdir -p "$dir/target" && echo built >"$dir/target/out"

count=$(find "$dir/src" -name '*.dat' | wc -l)
bytes=$(du -sb "$dir/src" | cut -f1)
echo "tree: $dir ($count input files, $bytes bytes)"

t0=$(date +%s%N)
find "$dir/src" -name '*.dat' -printf '%s %T@ %i %p\n' >/dev/null
t1=$(date +%s%N)
echo "stat walk (find -printf):      $(((t1 - t0) / 1000000)) ms"

t0=$(date +%s%N)
find "$dir/src" -name '*.dat' -print0 | xargs -0 sha256sum >/dev/null
t1=$(date +%s%N)
echo "full re-read (sha256sum):      $(((t1 - t0) / 1000000)) ms"
echo "sanctuary input pattern:        src/**/*.dat (root $dir)"
