#!/usr/bin/env bash
# Benchmarks of make-style tasks and the input hashing behind the cache, each against the
# everyday tool it replaces, measured in the same run on the same files:
#
#   (a) no-op `sanctuary run` of a task whose inputs are FILES files (~10 KB each),
#       against GNU make's no-op on a Makefile whose target depends on the same files;
#   (b) cold hashing of that tree (fresh state dir, so every file is read),
#       against `sha256sum` over the same files;
#   (c) 100 independent trivial tasks (`true`) at -j 2, against the same 100 `sh -c true`
#       from a shell loop.
#
# usage: scripts/bench-tasks.sh [FILES]   (default 10000; installs hyperfine and make when missing)
# Prints a markdown table on stdout; hyperfine's progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-bench-tools.sh hyperfine make python3
files=${1:-10000}
cargo build --release --quiet
bin=$PWD/target/release/sanctuary
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# The tree: FILES files of 10 KB of random bytes (so nothing compresses or dedupes), 100 per
# directory, plus a Makefile naming every one of them as a prerequisite.
python3 - "$dir/tree" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
names = []
for i in range(n):
    d = os.path.join(root, "src", f"d{i // 100:03}")
    os.makedirs(d, exist_ok=True)
    name = f"src/d{i // 100:03}/f{i:05}.dat"
    with open(os.path.join(root, name), "wb") as f:
        f.write(os.urandom(10 * 1024))
    names.append(name)
with open(os.path.join(root, "Makefile"), "w") as f:
    f.write("out/stamp: " + " ".join(names) + "\n\tmkdir -p out && touch out/stamp\n")
with open(os.path.join(root, "Sanctuary.kdl"), "w") as f:
    f.write('task "hash" {\n    run "mkdir -p out && touch out/stamp"\n'
            '    inputs "src"\n    outputs "out/stamp"\n}\n')
PY
tree=$dir/tree
mb=$(du -sm "$tree/src" | cut -f1)

# 100 independent tasks and the shell loop they are compared with.
mkdir -p "$dir/many"
{
    for i in $(seq 100); do printf 'task "t%d" {\n    run "true"\n}\n' "$i"; done
} >"$dir/many/Sanctuary.kdl"
tasks=$(seq -f 't%g' 100 | tr '\n' ' ')

# Prime both tools so the timed runs are real no-ops.
make -s -C "$tree" >/dev/null
"$bin" -f "$tree/Sanctuary.kdl" run hash >/dev/null

# Runs hyperfine on two commands and prints "mean_a mean_b" in seconds.
compare() {
    local json=$dir/$1.json
    shift
    hyperfine --style basic --export-json "$json" "$@" >&2
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(r[0]["mean"], r[1]["mean"])' "$json"
}

noop_sanct="$bin -f $tree/Sanctuary.kdl run hash"
noop_make="make -s -C $tree"
read -r a1 a2 < <(compare noop --warmup 3 --min-runs 10 \
    -n "sanctuary no-op" "$noop_sanct" -n "make no-op" "$noop_make")

cold_sanct="$bin -f $tree/Sanctuary.kdl run hash"
cold_prep="rm -rf $tree/.sanctuary $tree/out"
cold_sha="find $tree/src -type f -print0 | xargs -0 sha256sum > /dev/null"
read -r b1 b2 < <(compare cold --warmup 2 --min-runs 10 \
    -n "sanctuary cold hash" --prepare "$cold_prep" "$cold_sanct" \
    -n "sha256sum" --prepare true "$cold_sha")

many_sanct="$bin -f $dir/many/Sanctuary.kdl run --force -j 2 $tasks"
many_loop="for i in \$(seq 100); do sh -c true; done"
read -r c1 c2 < <(compare many --warmup 2 --min-runs 10 \
    -n "sanctuary 100 tasks" "$many_sanct" -n "shell loop" "$many_loop")

python3 - "$files" "$mb" "$a1" "$a2" "$b1" "$b2" "$c1" "$c2" \
    "$noop_sanct" "$noop_make" "$cold_prep; $cold_sanct" "$cold_sha" \
    "$bin -f many/Sanctuary.kdl run --force -j 2 t1 … t100" "$many_loop" <<'PY'
import sys
files, mb = sys.argv[1], sys.argv[2]
a1, a2, b1, b2, c1, c2 = map(float, sys.argv[3:9])
cmds = sys.argv[9:]
ms = lambda s: f"{s * 1000:.1f} ms"
print(f"Inputs: {files} files, {mb} MB.\n")
print("| benchmark | sanctuary | reference | ratio |")
print("|---|---|---|---|")
print(f"| (a) no-op check | {ms(a1)} | make: {ms(a2)} | {a2 / a1:.1f}× faster than make |")
print(f"| (b) cold hash | {ms(b1)} ({int(mb) / b1:.0f} MB/s) | sha256sum: {ms(b2)} ({int(mb) / b2:.0f} MB/s) "
      f"| {b2 / b1:.2f}× sha256sum's speed |")
print(f"| (c) 100 trivial tasks, -j 2 | {ms(c1)} ({ms(c1 / 100)}/task) "
      f"| shell loop: {ms(c2)} ({ms(c2 / 100)}/task) | {c1 / c2:.2f}× the loop's time |")
print("\nCommands:\n")
labels = ["(a) sanctuary", "(a) make", "(b) sanctuary", "(b) sha256sum", "(c) sanctuary", "(c) loop"]
for label, cmd in zip(labels, cmds):
    print(f"- {label}: `{cmd}`")
PY
