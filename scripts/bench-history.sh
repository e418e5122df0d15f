#!/usr/bin/env bash
# Benchmarks of history and rollback on the voidcat stack (five health-gated services),
# each against a reference measured in the same run:
#   history   `sanctuary history` with 100 generations, against `sanctuary validate` (loading
#             the manifest, the floor of every command)
#   drift     `sanctuary drift` with 100 generations, against a no-op `sanctuary plan` of the
#             same running stack
#   rollback  `sanctuary rollback -y` to the previous generation (images present; the services
#             are replaced, nothing is built), against a cold `sanctuary apply -y` of the same
#             stack from nothing (containers, network, volumes and images removed)
#
# The 100 generations are copies of two real ones (records of two real applies), numbered
# 1..100, so `history` reads and parses exactly what it would after 100 applies.
#
# usage: scripts/bench-history.sh [RUNS]   (default 5; installs hyperfine when missing;
# SANCTUARY_BIN overrides the release binary)
set -euo pipefail
RUNS="${1:-5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
"$ROOT/scripts/ensure-docker.sh" >/dev/null
"$ROOT/scripts/ensure-bench-tools.sh" hyperfine python3
if [ -z "${SANCTUARY_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    SANCTUARY_BIN=$ROOT/target/release/sanctuary
fi
BIN=$SANCTUARY_BIN
WORK="$(mktemp -d)"
PROJECT="benchhist$$"
DIR="$WORK/voidcat"
cleanup() {
    (cd "$DIR" 2>/dev/null && "$BIN" destroy -y --volumes >/dev/null 2>&1) || true
    docker images -q --filter "label=sanctuary.project=$PROJECT" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    docker images -q "$PROJECT-generations" | xargs -r docker rmi -f >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cp -r "$ROOT/examples/voidcat" "$DIR"
sed -i "s/project \"voidcat\"/project \"$PROJECT\"/; s/host=300\\([0-9]\\)/host=4300\\1/" \
    "$DIR/Sanctuary.kdl"
S="cd $DIR && $BIN"

# Two real generations: the stack, then one env value flipped.
(cd "$DIR" && "$BIN" apply -y >/dev/null 2>&1)
cat >"$WORK/flip.sh" <<EOF
#!/bin/sh
if grep -q 'tester' "$DIR/Sanctuary.kdl"; then sed -i 's/tester/qa/' "$DIR/Sanctuary.kdl"; else sed -i 's/"qa"/"tester"/' "$DIR/Sanctuary.kdl"; fi
EOF
chmod +x "$WORK/flip.sh"
"$WORK/flip.sh"
(cd "$DIR" && "$BIN" apply -y >/dev/null 2>&1)

# 100 generations for the history case, in a copy of the state directory.
HIST="$WORK/hist"
mkdir -p "$HIST"
cp "$DIR/Sanctuary.kdl" "$HIST/Sanctuary.kdl"
sed -i "/^project /a\\    state-dir \"$HIST/.sanctuary\"" "$HIST/Sanctuary.kdl"
python3 - "$DIR/.sanctuary/history" "$HIST/.sanctuary/history" <<'PY'
import json, os, sys
src, dst = sys.argv[1:3]
os.makedirs(dst, exist_ok=True)
records = [json.load(open(os.path.join(src, f))) for f in sorted(os.listdir(src)) if f.endswith(".json")]
for n in range(1, 101):
    r = dict(records[(n - 1) % len(records)], number=n)
    json.dump(r, open(os.path.join(dst, f"{n:06}.json"), "w"), indent=2)
PY
cp -r "$ROOT/examples/voidcat/docker" "$ROOT/examples/voidcat/workspace" "$HIST/" 2>/dev/null || true
# The stack's state as the last apply left it, so drift checks every object.
cp "$DIR/.sanctuary/state.json" "$HIST/.sanctuary/state.json"

hyperfine --style basic --warmup 3 --min-runs 30 --export-json "$WORK/history.json" \
    -n "history (100 generations)" "$BIN -f $HIST/Sanctuary.kdl history" \
    -n "validate" "$BIN -f $HIST/Sanctuary.kdl validate" >&2
hyperfine --style basic --warmup 3 --min-runs 20 --export-json "$WORK/drift.json" \
    -n "drift (100 generations)" "$BIN -f $HIST/Sanctuary.kdl drift" \
    -n "plan (no changes)" "$S plan --detailed-exitcode" >&2

# Rollback: each run goes back one generation (to the other env value), which replaces the
# changed service; cold apply starts from nothing, images included.
hyperfine --style basic --runs "$RUNS" --export-json "$WORK/rollback.json" \
    -n "rollback" "$S rollback -y >/dev/null 2>&1" >&2
down="$S destroy -y --volumes >/dev/null 2>&1; docker images -q --filter label=sanctuary.project=$PROJECT | xargs -r docker rmi -f >/dev/null 2>&1"
hyperfine --style basic --runs "$RUNS" --prepare "$down" --export-json "$WORK/cold.json" \
    -n "cold apply" "$S apply -y >/dev/null 2>&1" >&2

python3 - "$WORK" <<'PY'
import json, os, sys
w = sys.argv[1]
def results(name):
    return json.load(open(os.path.join(w, name + ".json")))["results"]
h, v = results("history")
d, p = results("drift")
rb, = results("rollback")
cold, = results("cold")
ms = lambda r: f"{r['mean'] * 1000:.1f} ms ± {(r['stddev'] or 0) * 1000:.1f}"
s = lambda r: f"{r['mean']:.2f} s ± {(r['stddev'] or 0):.2f}"
print("| case | sanctuary | reference | ratio |")
print("|---|---|---|---|")
print(f"| `history`, 100 generations | {ms(h)} | `validate` {ms(v)} | {h['mean'] / v['mean']:.2f}× |")
print(f"| `drift`, 100 generations | {ms(d)} | no-op `plan` {ms(p)} | {d['mean'] / p['mean']:.2f}× |")
print(f"| `rollback` of voidcat, images present | {s(rb)} | cold `apply` {s(cold)} | {rb['mean'] / cold['mean']:.2f}× |")
PY
