#!/bin/sh
# Backup and restore throughput of `sanctuary backup` / `sanctuary restore` from a host path,
# against the zstd CLI on the same data in the same run: `tar -c | zstd -3 -T1` (one
# thread), `tar -c | zstd -3 -T0` (all cores) and `zstd -d | tar -x`. Prints a markdown
# table. The tree mixes many small text-like files with a few large ones: about SIZE_MB in
# total (default 1000), half in 4 KiB - 64 KiB files, half in four large files.
#
# usage: scripts/bench-backup.sh [DIR]        (default: a new directory under ${TMPDIR:-/tmp})
#        SIZE_MB=300 RUNS=5 SANCTUARY=target/release/sanctuary scripts/bench-backup.sh
# Each figure is the fastest of RUNS runs (default 3).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/ensure-bench-tools.sh" zstd python3
dir=${1:-$(mktemp -d "${TMPDIR:-/tmp}/sanctuary-bench-backup.XXXXXX")}
size_mb=${SIZE_MB:-1000}
bin=${SANCTUARY:-}
if [ -z "$bin" ]; then
    if [ -x "$root/target/release/sanctuary" ]; then bin=$root/target/release/sanctuary
    else bin=$root/target/debug/sanctuary; fi
fi
[ -x "$bin" ] || { echo "no sanctuary binary at $bin (cargo build first)" >&2; exit 2; }

src=$dir/src
mkdir -p "$src/small" "$src/large"
# Small files: base64 of random bytes (compresses like text, ~0.75), in 64 directories.
small_bytes=$((size_mb * 1024 * 1024 / 2))
i=0
made=0
while [ "$made" -lt "$small_bytes" ]; do
    d=$src/small/d$((i % 64))
    mkdir -p "$d"
    chunk=$((8 * 1024 * 1024))
    head -c $((chunk * 3 / 4)) /dev/urandom | base64 -w 100 >"$d/.blob"
    (cd "$d" && split -a 4 -b 16k .blob "f$i-" && rm .blob)
    made=$((made + chunk))
    i=$((i + 1))
done
# Large files: real binaries (compress ~2-3x) and random bytes (incompressible).
large=$((size_mb * 1024 * 1024 / 8))
find /usr/lib /usr/bin -type f -size +100k 2>/dev/null | head -2000 | xargs cat 2>/dev/null |
    head -c $((large * 2)) >"$src/large/binaries.bin" || true
head -c "$large" "$src/large/binaries.bin" >"$src/large/binaries-2.bin"
head -c "$large" /dev/urandom >"$src/large/random.bin"
head -c "$large" /dev/zero >"$src/large/zeros.bin"

files=$(find "$src" -type f | wc -l)
bytes=$(du -sb "$src" | cut -f1)
mb=$(echo "$bytes" | awk '{printf "%.0f", $1 / 1048576}')
cat >"$dir/Sanctuary.kdl" <<KDL
project "bench-backup"
backup "tree" {
    path "./src"
    copy "primary" path="./backups"
}
KDL

now() { date +%s%N; }
# best PREPARE CMD: the fastest of $RUNS runs of CMD (default 3), each after PREPARE; the
# minimum is the figure least disturbed by whatever else the machine does.
RUNS=${RUNS:-3}
best() {
    b=""
    for _ in $(seq 1 "$RUNS"); do
        sh -c "$1"
        t0=$(now); sh -c "$2" >/dev/null 2>&1; t1=$(now)
        t=$(echo "$t0 $t1" | awk '{printf "%.2f", ($2 - $1) / 1e9}')
        if [ -z "$b" ] || awk -v a="$t" -v b="$b" 'BEGIN { exit !(a < b) }'; then b=$t; fi
    done
    echo "$b"
}
sync
# The stat cache distrusts a file modified within 2 s of being hashed (its next change could
# keep the same mtime); in real use data is not written just before a backup, so wait that
# out rather than measure a second backup that has to read the newest files again.
sleep 3
cd "$dir"

fresh="rm -rf '$dir/backups' '$dir/.sanctuary'; sync"
s_backup=$(best "$fresh" "'$bin' backup tree")
s_size=$(du -cb backups/*.tar.zst | tail -1 | cut -f1)
s_noop=$(best "true" "'$bin' backup tree")
s_restore=$(best "rm -rf '$dir/restored'; sync" "'$bin' restore tree --to '$dir/restored'")
rm -rf "$dir/restored"

z_t1=$(best "rm -f '$dir/t1.tar.zst'; sync" "tar -C '$src' -cf - . | zstd -q -3 -T1 >'$dir/t1.tar.zst'")
z_t0=$(best "rm -f '$dir/t0.tar.zst'; sync" "tar -C '$src' -cf - . | zstd -q -3 -T0 >'$dir/t0.tar.zst'")
z_size=$(stat -c %s "$dir/t0.tar.zst")
z_d=$(best "rm -rf '$dir/x'; mkdir -p '$dir/x'; sync" "zstd -q -d -c '$dir/t0.tar.zst' | tar -C '$dir/x' -xf -")
sync

ratio() { echo "$1 $2" | awk '{printf "%.3f", $1 / $2}'; }
rate() { echo "$mb $1" | awk '{ if ($2 > 0) printf "%.0f", $1 / $2; else print "-" }'; }
echo "tree: $dir ($files files, $mb MiB); binary: $bin; $(nproc) cores"
echo
echo "| step | time (s) | MiB/s | compressed / input |"
echo "|---|---:|---:|---:|"
echo "| sanctuary backup (level 3, all cores, sha256 of every file, fsync) | $s_backup | $(rate "$s_backup") | $(ratio "$s_size" "$bytes") |"
echo "| sanctuary backup, unchanged source | $s_noop | - | - |"
echo "| sanctuary restore (verify archive + entries, extract, swap) | $s_restore | $(rate "$s_restore") | - |"
echo "| tar -c \| zstd -3 -T1 | $z_t1 | $(rate "$z_t1") | $(ratio "$(stat -c %s "$dir/t1.tar.zst")" "$bytes") |"
echo "| tar -c \| zstd -3 -T0 | $z_t0 | $(rate "$z_t0") | $(ratio "$z_size" "$bytes") |"
echo "| zstd -d \| tar -x | $z_d | $(rate "$z_d") | - |"
echo
echo "- backup: $(ratio "$z_t1" "$s_backup")x faster than tar | zstd -T1, $(ratio "$z_t0" "$s_backup")x faster than tar | zstd -T0"
echo "- restore: $(ratio "$z_d" "$s_restore")x faster than zstd -d | tar -x"
if [ -z "${1:-}" ] && [ -z "${KEEP:-}" ]; then rm -rf "$dir"; fi
