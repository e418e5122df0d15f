#!/usr/bin/env bash
# Times a sync between a host directory and a directory in a running container, against
# `docker cp` of the same tree into (and out of) the same container, measured in the same run:
#   - first pass host → container (empty container directory, no recorded base)
#   - first pass container → host (empty host directory, no recorded base)
#   - a pass after 1% of the files changed on the host
# The pass out of the container flushes what it wrote before it records the base; it is also
# compared with `docker cp` followed by `sync`, which leaves the files as durable.
# The tree: FILES files of about 100 KB of random bytes (199 MB for 2,000) in 20 directories.
# Prints a markdown table with times, ratios and the commands.
#
# usage: scripts/bench-sync-container.sh [FILES] [RUNS]   (installs hyperfine when missing)
# SANCTUARY_BIN=path overrides the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-bench-tools.sh hyperfine python3
scripts/ensure-docker.sh >/dev/null
files=${1:-2000}
runs=${2:-5}
if [ -z "${SANCTUARY_BIN:-}" ]; then
    cargo build --release --quiet
    SANCTUARY_BIN=$PWD/target/release/sanctuary
fi
bin=$SANCTUARY_BIN
dir=$(mktemp -d)
project="benchsync$$"
box="$project-box"
cleanup() {
    "$bin" -f "$dir/Sanctuary.kdl" destroy -y >/dev/null 2>&1 || true
    docker rm -f "$box" >/dev/null 2>&1 || true
    docker rmi -f "$project-img" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

# A scratch image with static busybox: sh, stat, find, mv, sleep.
mkdir -p "$dir/img"
cp "$(command -v busybox)" "$dir/img/busybox"
cat > "$dir/img/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN ["/bin/busybox", "mkdir", "-p", "/tree", "/ref", "/tmp"]
EOF
docker build -q -t "$project-img" "$dir/img" >/dev/null

python3 - "$dir/src" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 20}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}.bin"), "wb") as f:
        f.write(os.urandom(99_500 + (i % 7) * 13))
PY
touch -d '1 hour ago' "$dir"/src/*/* "$dir"/src/*
size=$(du -sm "$dir/src" | cut -f1)

cat > "$dir/Sanctuary.kdl" <<EOF
project "$project"
service "box" {
    image "$project-img:latest"
    command "sleep" "1d"
}
sync "tree" {
    host "$dir/host"
    service "box" path="/tree"
    quiet-period "0s"
}
EOF
sync="$bin -f $dir/Sanctuary.kdl sync tree"
mkdir -p "$dir/host"
$bin -f "$dir/Sanctuary.kdl" apply -y >/dev/null

# Changes 1% of the files in DIR (new content, same names), with mtimes old enough that the
# quiet period does not apply.
cat > "$dir/touch.py" <<'PY'
import os, random, sys, time
root, n = sys.argv[1], int(sys.argv[2])
paths = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs)
old = time.time() - 600 - random.random() * 100
for p in random.sample(paths, max(1, n // 100)):
    with open(p, "ab") as f:
        f.write(os.urandom(64))
    os.utime(p, (old, old))
PY

reset_to_container="rm -rf $dir/host $dir/.sanctuary/sync; cp -a $dir/src $dir/host; docker exec $box sh -c 'rm -rf /tree; mkdir /tree'"
reset_to_host="rm -rf $dir/host $dir/.sanctuary/sync; mkdir $dir/host"
reset_ref_in="docker exec $box sh -c 'rm -rf /ref; mkdir /ref'"
reset_ref_out="rm -rf $dir/ref; mkdir $dir/ref"

# Every run starts with nothing dirty in the page cache (`sync` after the reset): a flush
# inside the measured command must not pay for what the reset or the previous command wrote.
run() { # name, prepare, command
    hyperfine --runs "$runs" --prepare "$2; sync" --export-json "$dir/$1.json" -n "$1" "$3" >&2
}
run cp-in "$reset_ref_in" "docker cp $dir/src/. $box:/ref"
run sanctuary-in "$reset_to_container" "$sync"
# The container's /tree now holds the tree: copy it out.
run cp-out "$reset_ref_out" "docker cp $box:/tree/. $dir/ref"
# The same, made as durable as a sync pass makes it (the pass flushes before it records).
run cp-out-sync "$reset_ref_out" "docker cp $box:/tree/. $dir/ref && sync"
run sanctuary-out "$reset_to_host" "$sync"
# A synced pair (host and container hold the tree, base recorded), then 1% changes.
sh -c "$reset_to_container" && $sync >/dev/null
run sanctuary-1pct "python3 $dir/touch.py $dir/host $files" "$sync"

python3 - "$dir" "$files" "$size" "$bin" <<'PY'
import json, os, sys
d, files, size, binary = sys.argv[1:5]
def mean(name):
    with open(os.path.join(d, name + ".json")) as f:
        r = json.load(f)["results"][0]
    return r["mean"], r["stddev"] or 0.0
rows = [
    ("first pass, host → container", "sanctuary-in", "cp-in"),
    ("first pass, container → host", "sanctuary-out", "cp-out"),
]
print(f"Sync of {files} files ({size} MB) with a directory in a running container "
      "(mean ± σ, hyperfine; ratio = sanctuary ÷ reference)\n")
print("| pass | sanctuary | reference | ratio |")
print("|---|---|---|---|")
for label, s, r in rows:
    (sm, ss), (rm, rs) = mean(s), mean(r)
    print(f"| {label} | {sm:.2f} s ± {ss:.2f} | `docker cp` {rm:.2f} s ± {rs:.2f} | {sm / rm:.2f}× |")
(sm, ss), (rm, rs) = mean("sanctuary-out"), mean("cp-out-sync")
print(f"| first pass, container → host | {sm:.2f} s ± {ss:.2f} | `docker cp` then `sync` {rm:.2f} s ± {rs:.2f} | {sm / rm:.2f}× |")
(pm, ps), (fm, _) = mean("sanctuary-1pct"), mean("sanctuary-in")
print(f"| 1% of the files changed on the host | {pm:.2f} s ± {ps:.2f} | first pass {fm:.2f} s | {pm / fm:.2f}× |")
print(f"\nbinary: {binary}; reproduce: scripts/bench-sync-container.sh {files}")
PY
