#!/usr/bin/env bash
# What sweeping the state directory for temporaries of dead processes costs a no-op command.
#
# Every command that opens a session reads four directories of the state directory (its top,
# cache/nodes, secrets, sync) and removes the names a dead process left there. The sweep cannot
# be switched off, so its cost is bounded from above in the same run: a no-op `sanctuary run`
# with those directories as a project normally has them (a handful of entries, no debris)
# against the same no-op with 1,000 temporaries of a live process in each of the four — 4,000
# names read, parsed and checked against a running pid, and kept. The difference is the cost
# of looking at 4,000 entries; the usual case looks at a few.
#
# usage: scripts/bench-sweep.sh   (installs hyperfine when missing)
# Prints a markdown table on stdout; hyperfine's progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-bench-tools.sh hyperfine python3
cargo build --release --quiet
bin=$PWD/target/release/sanctuary
dir=$(mktemp -d)
holder=
cleanup() {
    [ -n "$holder" ] && kill "$holder" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

make_project() {
    mkdir -p "$1/src"
    echo hello >"$1/src/a.txt"
    printf 'task "t" {\n    run "mkdir -p out && cp src/a.txt out/a.txt"\n    inputs "src"\n    outputs "out/a.txt"\n}\n' \
        >"$1/Sanctuary.kdl"
    "$bin" -f "$1/Sanctuary.kdl" run t >/dev/null
}
make_project "$dir/plain"
make_project "$dir/crowded"

# A process that stays alive for the whole run owns the crowd, so nothing of it is removed.
sleep 3600 &
holder=$!
for sub in "" cache/nodes secrets sync; do
    d=$dir/crowded/.sanctuary/$sub
    mkdir -p "$d"
    for i in $(seq 1000); do : >"$d/.f$i.sanctuary-tmp-$holder-x$i"; done
done

json=$dir/sweep.json
hyperfine --style basic --warmup 5 --min-runs 40 --export-json "$json" \
    -n "no-op, usual state dir" "$bin -f $dir/plain/Sanctuary.kdl run t" \
    -n "no-op, 4,000 live temporaries" "$bin -f $dir/crowded/Sanctuary.kdl run t" >&2
left=$(find "$dir/crowded/.sanctuary" -name "*.sanctuary-tmp-$holder-*" | wc -l)

python3 - "$json" "$left" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
a, b = r[0]["mean"], r[1]["mean"]
ms = lambda s: f"{s * 1000:.1f} ms"
print("| no-op `sanctuary run t` | mean | ratio |")
print("|---|---|---|")
print(f"| usual state directory | {ms(a)} ± {ms(r[0]['stddev'])} | 1.00 |")
print(f"| 4,000 live temporaries to look at | {ms(b)} ± {ms(r[1]['stddev'])} | {b / a:.2f} |")
print(f"\nDifference: {ms(b - a)} for 4,000 entries (target: the sweep adds ≤ 5 ms); "
      f"live temporaries kept: {sys.argv[2]} of 4000.")
PY
