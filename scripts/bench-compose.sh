#!/usr/bin/env bash
# Benchmark: the voidcat stack (five health-gated busybox services, three volumes, one network)
# brought up by docker-compose 1.29 and by `sanctuary apply -y` (release build).
#
# Three cases, each measured with hyperfine:
#   cold    from nothing (containers, network and volumes removed; the image already built)
#   no-op   everything already up
#   change  one env value of one service flipped between runs (that service is replaced)
#
# Both tools run the same image tag, ports (in different ranges so the stacks cannot clash),
# volumes, network, limits and health checks; compose gates the four clones on omega with
# `depends_on: condition: service_healthy`. Note that `docker-compose up -d` returns once the
# containers are started, while `sanctuary apply` also waits until every service is healthy.
#
# Usage: scripts/bench-compose.sh [RUNS]   (RUNS defaults to 5; the no-op case runs 4x that;
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
  (cd "$SANCT_DIR" 2>/dev/null && "$BIN" destroy --volumes >/dev/null 2>&1) || true
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

"${HF[@]}" "$WORK/cold.json" --runs "$RUNS" \
  -n compose --prepare "$C down -v >/dev/null 2>&1" "$C up -d >/dev/null 2>&1" \
  -n sanctuary --prepare "$S destroy --volumes >/dev/null" "$S apply -y >/dev/null"
# The cold runs leave both stacks up for the no-op case.
"${HF[@]}" "$WORK/noop.json" --runs $((RUNS * 4)) --warmup 1 \
  -n compose "$C up -d >/dev/null 2>&1" \
  -n sanctuary "$S apply -y >/dev/null"
"${HF[@]}" "$WORK/change.json" --runs "$RUNS" \
  -n compose --prepare "$WORK/flip.sh" "$C up -d >/dev/null 2>&1" \
  -n sanctuary --prepare "$WORK/flip.sh" "$S apply -y >/dev/null"

python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
targets = {"cold": ("cold up", 0.8), "noop": ("no-op up", 1 / 20), "change": ("one env value changed", None)}
print("| case | docker-compose 1.29 | sanctuary apply -y | sanctuary / compose | target |")
print("|---|---|---|---|---|")
for key, (label, target) in targets.items():
    r = {x["command"]: x for x in json.load(open(f"{work}/{key}.json"))["results"]}
    c, s = r["compose"]["mean"], r["sanctuary"]["mean"]
    cs, ss = r["compose"]["stddev"] or 0, r["sanctuary"]["stddev"] or 0
    ratio = s / c
    t = "-" if target is None else (f"≤ {target:.2f} " + ("met" if ratio <= target else "MISSED"))
    print(f"| {label} | {c:.3f} s ± {cs:.3f} | {s:.3f} s ± {ss:.3f} | {ratio:.3f} | {t} |")
EOF
echo
echo "Commands: \`docker-compose -p P up -d\` (cold: after \`down -v\`) vs \`sanctuary apply -y\`"
echo "(cold: after \`sanctuary destroy --volumes\`); image $IMAGE built beforehand for both."
