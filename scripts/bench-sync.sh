#!/usr/bin/env bash
# Times a sync pass over 10,000 files between two local directories: a no-change pass and a
# pass after 1% of the files changed. sanctuary (two-way, its HostSide on both ends, through
# the hidden `sync --local-dirs A B`) against `rsync -a` (one-way) and `unison` (two-way) on
# identical trees, measured in the same run. Prints a markdown table with times, ratios and
# the commands.
#
# usage: scripts/bench-sync.sh [FILES]   (installs hyperfine, rsync and unison when missing)
# SANCTUARY_BIN=path overrides the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-bench-tools.sh hyperfine rsync unison python3
files=${1:-10000}
if [ -z "${SANCTUARY_BIN:-}" ]; then
    cargo build --release --quiet
    SANCTUARY_BIN=$PWD/target/release/sanctuary
fi
bin=$SANCTUARY_BIN
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export UNISON="$dir/unison-home"
mkdir -p "$UNISON"

# One source tree: $files small files in 100 directories, then a copy per tool and side.
python3 - "$dir/src" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 100}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.txt"), "w") as f:
        f.write(f"file {i}\n" * 20)
PY
for t in s r u; do
    cp -a "$dir/src" "$dir/$t-a"
    cp -a "$dir/src" "$dir/$t-b"
done
# Old mtimes: outside the two-second window in which a hash cache re-reads every file.
find "$dir" -type f -exec touch -d '1 hour ago' {} +

sanc="$bin sync --local-dirs $dir/s-a $dir/s-b --base-file $dir/s.base.json"
rsync_cmd="rsync -a $dir/r-a/ $dir/r-b/"
unison_cmd="unison $dir/u-a $dir/u-b -batch -auto -silent"
# First passes record the base / archive; they are not measured.
$sanc >/dev/null
$rsync_cmd
$unison_cmd >/dev/null 2>&1

# Changes 1% of the files in DIR (new content, same names).
cat > "$dir/touch.py" <<'PY'
import os, random, sys, time
root, n = sys.argv[1], int(sys.argv[2])
paths = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs]
for p in random.sample(paths, max(1, n // 100)):
    with open(p, "a") as f:
        f.write(f"changed {time.time_ns()}\n")
PY

run() { # name, prepare-dir-or-empty, command
    local name=$1 prep=$2 cmd=$3
    local extra=()
    if [ -n "$prep" ]; then extra=(--prepare "python3 $dir/touch.py $prep $files"); fi
    hyperfine --warmup 1 --runs 10 "${extra[@]}" --export-json "$dir/$name.json" -n "$name" "$cmd" >&2
}
run sanctuary-nochange "" "$sanc"
run rsync-nochange "" "$rsync_cmd"
run unison-nochange "" "$unison_cmd"
run sanctuary-1pct "$dir/s-a" "$sanc"
run rsync-1pct "$dir/r-a" "$rsync_cmd"
run unison-1pct "$dir/u-a" "$unison_cmd"

python3 - "$dir" "$files" "$bin" <<'PY'
import json, os, sys
d, files, binary = sys.argv[1], sys.argv[2], sys.argv[3]
def mean(name):
    with open(os.path.join(d, name + ".json")) as f:
        r = json.load(f)["results"][0]
    return r["mean"], r["stddev"] or 0.0
print(f"Sync of {files} files between two local directories "
      "(mean ± σ of 10 runs, hyperfine; ratio = sanctuary ÷ tool)\n")
print("| pass | sanctuary (two-way) | rsync -a (one-way) | unison (two-way) | vs rsync | vs unison |")
print("|---|---|---|---|---|---|")
for label, key in [("no change", "nochange"), ("1% changed", "1pct")]:
    s, ss = mean("sanctuary-" + key)
    r, rs = mean("rsync-" + key)
    u, us = mean("unison-" + key)
    print(f"| {label} | {s*1000:.0f} ± {ss*1000:.0f} ms | {r*1000:.0f} ± {rs*1000:.0f} ms "
          f"| {u*1000:.0f} ± {us*1000:.0f} ms | {s/r:.2f}× | {s/u:.2f}× |")
print("\nCommands (A, B are copies of the same tree; 1% changed: a hyperfine --prepare step "
      "appends a line to 1% of the files in A before each run):\n")
print("- sanctuary: `sanctuary sync --local-dirs A B --base-file BASE`")
print("- rsync: `rsync -a A/ B/`")
print("- unison: `unison A B -batch -auto -silent`")
PY
