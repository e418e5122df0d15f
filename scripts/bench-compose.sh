#!/usr/bin/env bash
# Benchmark: the voidcat stack (five health-gated busybox services, three volumes, one network)
# brought up by docker-compose 1.29 and by `sanctuary apply -y` (release build).
#
# The cases, each measured with hyperfine:
#   cold    from nothing (containers, network and volumes removed; the image already built)
#   no-op   everything already up (also against `docker ps -q`, the engine round trip floor)
#   change  one env value of one service flipped between runs (that service is replaced)
#   scale   N = 5, 20, 50 health-gated services from nothing (SCALE overrides the list)
#
# Both tools run the same image tag, ports (in different ranges so the stacks cannot clash),
# volumes, network, limits and health checks; compose gates the four clones on omega with
# `depends_on: condition: service_healthy`. Note that `docker-compose up -d` returns once the
# containers are started, while `sanctuary apply` also waits until every service is healthy.
#
# Usage: scripts/bench-compose.sh [RUNS]   (RUNS defaults to 5; the no-op case runs 8x that;
# SANCTUARY_BIN overrides the release binary)
set -euo pipefail

RUNS="${1:-5}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${SANCTUARY_BIN:-$ROOT/target/release/sanctuary}"
COMPOSE="${COMPOSE:-docker-compose}"

"$ROOT/scripts/ensure-docker.sh"
"$ROOT/scripts/ensure-bench-tools.sh" hyperfine python3
if [[ $COMPOSE == docker-compose ]]; then
  "$ROOT/scripts/ensure-bench-tools.sh" docker-compose
fi
if [[ ! -x "$BIN" ]]; then
  (cd "$ROOT" && cargo build --release --quiet)
fi

WORK="$(mktemp -d)"
S_PROJECT="benchsanct$$"
C_PROJECT="benchcompose$$"
SANCT_DIR="$WORK/sanctuary"
COMPOSE_DIR="$WORK/compose"
cleanup() {
  (cd "$SANCT_DIR" 2>/dev/null && "$BIN" destroy -y --volumes >/dev/null 2>&1) || true
  (cd "$COMPOSE_DIR" 2>/dev/null && "$COMPOSE" -p "$C_PROJECT" down -v >/dev/null 2>&1) || true
  docker images -q --filter "label=sanctuary.project=$S_PROJECT" | xargs -r docker rmi -f >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- sanctuary: a copy of the example with its own project name and ports 42000+.
cp -r "$ROOT/examples/voidcat" "$SANCT_DIR"
sed -i "s/project \"voidcat\"/project \"$S_PROJECT\"/; s/host=300\\([0-9]\\)/host=4200\\1/" \
  "$SANCT_DIR/Sanctuary.kdl"
(cd "$SANCT_DIR" && "$BIN" apply -y >/dev/null)
IMAGE="$(docker inspect -f '{{.Config.Image}}' "$S_PROJECT-omega")"

# --- compose: the same stack, same image tag, ports 42100+.
mkdir -p "$COMPOSE_DIR"
service() { # name role port depends(0/1) restart ro-artifacts ro-manifests
  local name=$1 role=$2 port=$3 dep=$4 restart=$5 roa=$6 rom=$7
  cat <<EOF
  $name:
    image: $IMAGE
    environment:
      CLONE_NAME: "$name"
      CLONE_ROLE: "$role"
      CLONE_PORT: "$port"
    ports: ["421${port: -2}:$port"]
    volumes:
      - artifacts:/workspace/artifacts$roa
      - manifests:/workspace/manifests$rom
      - audit:/workspace/audit
    networks:
      voidcat:
        aliases: [$name]
    restart: "$restart"
    cpus: 0.5
    mem_limit: 64m
    pids_limit: 64
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:$port/health"]
      interval: 1s
      timeout: 1s
      retries: 5
      start_period: 1s
EOF
  if [[ $dep == 1 ]]; then
    printf '    depends_on:\n      omega:\n        condition: service_healthy\n'
  fi
}
{
  echo 'version: "2.4"'
  echo 'services:'
  service omega coordinator 3000 0 unless-stopped "" ""
  service beta builder 3001 1 unless-stopped "" ":ro"
  service gamma reviewer 3002 1 unless-stopped "" ":ro"
  service delta tester 3004 1 on-failure:3 "" ":ro"
  service sigma auditor 3005 1 unless-stopped ":ro" ":ro"
  printf 'volumes:\n  artifacts:\n  manifests:\n  audit:\nnetworks:\n  voidcat:\n'
} >"$COMPOSE_DIR/docker-compose.yml"

# Flips delta's role in both files, so each run of the change case changes one env value.
cat >"$WORK/flip.sh" <<EOF
#!/bin/sh
for f in "$SANCT_DIR/Sanctuary.kdl" "$COMPOSE_DIR/docker-compose.yml"; do
  if grep -q 'tester' "\$f"; then sed -i 's/tester/qa/' "\$f"; else sed -i 's/"qa"/"tester"/' "\$f"; fi
done
EOF
chmod +x "$WORK/flip.sh"

C="cd $COMPOSE_DIR && $COMPOSE -p $C_PROJECT"
S="cd $SANCT_DIR && $BIN"
HF=(hyperfine --style none --export-json)

# Each cold run starts with neither stack up, so one tool's health checks never load the
# engine while the other is measured.
both_down="$C down -v >/dev/null 2>&1; $S destroy -y --volumes >/dev/null 2>&1"
"${HF[@]}" "$WORK/cold.json" --runs "$RUNS" --prepare "$both_down" \
  -n compose "$C up -d >/dev/null 2>&1" \
  -n sanctuary "$S apply -y >/dev/null"
# Both stacks up for the no-op case; `docker ps -q` is the floor any tool that asks the
# engine what runs pays.
sh -c "$C up -d >/dev/null 2>&1; $S apply -y >/dev/null"
"${HF[@]}" "$WORK/noop.json" --runs $((RUNS * 8)) --warmup 2 -N \
  -n compose "sh -c '$C up -d >/dev/null 2>&1'" \
  -n sanctuary "$BIN -f $SANCT_DIR/Sanctuary.kdl apply -y" \
  -n "docker ps -q" "docker ps -q"
"${HF[@]}" "$WORK/change.json" --runs "$RUNS" \
  -n compose --prepare "$WORK/flip.sh" "$C up -d >/dev/null 2>&1" \
  -n sanctuary --prepare "$WORK/flip.sh" "$S apply -y >/dev/null"

# Scale: N health-gated services (s2..sN wait for s1 to be healthy, 1 s health interval),
# cold, for each N. `docker-compose up -d` returns once the containers started; sanctuary
# returns once every service is healthy. Both voidcat stacks are taken down first, so their
# health checks do not load the engine during these runs.
scale_files() { # N DIR PROJECT
  python3 - "$IMAGE" "$1" "$2" "$3" <<'EOF'
import os, sys
image, n, out, project = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
kdl = [f'project "{project}"\n']
yml = ['version: "2.4"\nservices:\n']
for i in range(1, n + 1):
    dep = '' if i == 1 else '    depends-on "s1" condition="healthy"\n'
    kdl.append(f'service "s{i}" {{\n    image "{image}"\n'
               f'    env CLONE_NAME="s{i}" CLONE_ROLE="worker" CLONE_PORT=3000\n{dep}'
               '    health {\n        cmd "wget" "-qO-" "http://127.0.0.1:3000/health"\n'
               '        interval "1s"; timeout "1s"; retries 5; start-period "1s"\n    }\n}\n')
    cdep = '' if i == 1 else '    depends_on:\n      s1:\n        condition: service_healthy\n'
    yml.append(f'  s{i}:\n    image: {image}\n    environment:\n      CLONE_NAME: "s{i}"\n'
               '      CLONE_ROLE: "worker"\n      CLONE_PORT: "3000"\n'
               '    healthcheck:\n      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:3000/health"]\n'
               f'      interval: 1s\n      timeout: 1s\n      retries: 5\n      start_period: 1s\n{cdep}')
os.makedirs(out + "/s", exist_ok=True)
os.makedirs(out + "/c", exist_ok=True)
open(out + "/s/Sanctuary.kdl", "w").write("".join(kdl))
open(out + "/c/docker-compose.yml", "w").write("".join(yml))
EOF
}
(cd "$SANCT_DIR" && "$BIN" destroy -y >/dev/null 2>&1) || true
(cd "$COMPOSE_DIR" && "$COMPOSE" -p "$C_PROJECT" down >/dev/null 2>&1) || true
SCALE=${SCALE:-5 20 50}
RUNS_SCALE=${RUNS_SCALE:-3}
for n in $SCALE; do
  d="$WORK/scale$n"
  scale_files "$n" "$d" "${S_PROJECT}n$n"
  SC="cd $d/c && $COMPOSE -p ${C_PROJECT}n$n"
  SS="cd $d/s && $BIN"
  # The engine's own floor: the same containers started by `docker run -d`, 16 at a time,
  # without waiting for anything.
  floor="seq $n | xargs -P 16 -I{} docker run -d -q --name ${S_PROJECT}f{} -e CLONE_NAME=x -e CLONE_ROLE=y -e CLONE_PORT=3000 --health-cmd 'wget -qO- http://127.0.0.1:3000/health' --health-interval 1s --health-retries 5 --health-start-period 1s $IMAGE >/dev/null"
  unfloor="docker ps -aq --filter name=${S_PROJECT}f | xargs -r docker rm -f >/dev/null"
  # Every run starts from an empty engine: whatever the previous run of any of the three
  # left up would otherwise load the engine with its health checks.
  clean="$SC down -v >/dev/null 2>&1; $SS destroy -y >/dev/null 2>&1; $unfloor"
  "${HF[@]}" "$WORK/scale$n.json" --runs "$RUNS_SCALE" --prepare "$clean" \
    -n compose "$SC up -d >/dev/null 2>&1" \
    -n sanctuary "$SS apply -y >/dev/null" \
    -n floor "$floor"
  sh -c "$clean"
done

python3 - "$WORK" "$SCALE" <<'EOF'
import json, statistics, sys
work, scale = sys.argv[1], sys.argv[2].split()
def load(key):
    return {x["command"]: x for x in json.load(open(f"{work}/{key}.json"))["results"]}
def row(label, c, s, target):
    ratio = s["mean"] / c["mean"]
    med = statistics.median(s["times"]) / statistics.median(c["times"])
    t = "-" if target is None else (f"≤ {target:.2f} " + ("met" if ratio <= target else "MISSED"))
    print(f"| {label} | {c['mean']:.3f} s ± {c['stddev'] or 0:.3f} | {s['mean']:.3f} s ± {s['stddev'] or 0:.3f} "
          f"| {ratio:.3f} (median {med:.3f}) | {t} |")
print("| case | reference | sanctuary apply -y | sanctuary / reference | target |")
print("|---|---|---|---|---|")
r = load("cold"); row("voidcat cold up, vs docker-compose up -d", r["compose"], r["sanctuary"], 0.8)
r = load("noop")
row("voidcat no-op, vs docker-compose up -d", r["compose"], r["sanctuary"], 1 / 20)
row("voidcat no-op, vs docker ps -q", r["docker ps -q"], r["sanctuary"], 1.5)
r = load("change"); row("voidcat one env value changed, vs compose", r["compose"], r["sanctuary"], None)
for n in scale:
    r = load(f"scale{n}")
    row(f"{n} health-gated services cold, vs compose", r["compose"], r["sanctuary"], 0.8 if n == "50" else None)
    row(f"{n} services cold, vs `docker run -d` ×{n} (16 at a time, no wait)", r["floor"], r["sanctuary"], None)
EOF
echo
echo "Commands: \`docker-compose -p P up -d\` (cold: after \`down -v\`) vs \`sanctuary apply -y\`"
echo "(cold: after \`sanctuary destroy -y --volumes\`); image $IMAGE built beforehand for both;"
echo "the scale cases run $RUNS_SCALE times each for N in $SCALE (SCALE, RUNS_SCALE override)."
