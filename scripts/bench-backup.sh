#!/bin/sh
# Backup and restore throughput of `sanctuary backup` / `sanctuary restore` from a host path,
# against the zstd CLI on the same data in the same run: `tar -c | zstd -3 -T1` (one
# thread), `tar -c | zstd -3 -T0` (all cores) and `zstd -d | tar -x`. Prints a markdown
# table. The tree mixes many small text-like files with a few large ones: about SIZE_MB in
# total (default 1000), half in 4 KiB - 64 KiB files, half in four large files.
#
# usage: scripts/bench-backup.sh [DIR]        (default: a new directory under ${TMPDIR:-/tmp})
#        SIZE_MB=300 SANCTUARY=target/release/sanctuary scripts/bench-backup.sh
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
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
secs() { echo "$1 $2" | awk '{printf "%.2f", ($2 - $1) / 1e9}'; }
sync
# The stat cache distrusts a file modified within 2 s of being hashed (its next change could
# keep the same mtime); in real use data is not written just before a backup, so wait that
# out rather than measure a second backup that has to read the newest files again.
sleep 3
cd "$dir"

t0=$(now); "$bin" backup tree >/dev/null 2>&1; t1=$(now)
s_backup=$(secs "$t0" "$t1")
s_size=$(du -cb backups/*.tar.zst | tail -1 | cut -f1)
t0=$(now); "$bin" backup tree >/dev/null 2>&1; t1=$(now)
s_noop=$(secs "$t0" "$t1")
t0=$(now); "$bin" restore tree --to "$dir/restored" >/dev/null 2>&1; t1=$(now)
s_restore=$(secs "$t0" "$t1")
rm -rf "$dir/restored"

t0=$(now); tar -C "$src" -cf - . | zstd -q -3 -T1 >"$dir/t1.tar.zst"; t1=$(now)
z_t1=$(secs "$t0" "$t1")
t0=$(now); tar -C "$src" -cf - . | zstd -q -3 -T0 >"$dir/t0.tar.zst"; t1=$(now)
z_t0=$(secs "$t0" "$t1")
z_size=$(stat -c %s "$dir/t0.tar.zst")
mkdir -p "$dir/x"
t0=$(now); zstd -q -d -c "$dir/t0.tar.zst" | tar -C "$dir/x" -xf -; t1=$(now)
z_d=$(secs "$t0" "$t1")
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
if [ -z "${1:-}" ] && [ -z "${KEEP:-}" ]; then rm -rf "$dir"; fi
