#!/usr/bin/env bash
# Tool-call latency of `sanctuary mcp` over stdio, on examples/voidcat: CALLS calls each of
# `validate` and `status` in one session driven by the MCP Python SDK's client, against
# `sanctuary validate` and `sanctuary status` run as processes in the same run (what an
# agent without MCP would do). Medians; the stack need not be up (status then inspects
# absent containers, as it would for a stopped stack).
#
# usage: scripts/bench-mcp.sh [CALLS]   (default 50; makes the test venv with `mcp` if missing)
# SANCTUARY_BIN=path overrides the binary (default: a release build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-docker.sh >/dev/null
calls=${1:-50}
if [ -z "${SANCTUARY_BIN:-}" ]; then
    cargo build --release --quiet
    SANCTUARY_BIN=$PWD/target/release/sanctuary
fi
venv=target/test-venv
if ! "$venv/bin/python" -c 'import mcp' 2>/dev/null; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q mcp oteltest
fi
"$venv/bin/python" - "$SANCTUARY_BIN" "$PWD/examples/voidcat" "$calls" <<'PY'
import asyncio, statistics, subprocess, sys, time
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

binary, workdir, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])

def process(args):
    times = []
    for _ in range(calls // 2 + 3):
        t = time.perf_counter()
        subprocess.run([binary, *args], cwd=workdir, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times[3:])

async def tools():
    params = StdioServerParameters(command=binary, args=["mcp"], cwd=workdir)
    out = {}
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            for name in ("validate", "status"):
                times = []
                for i in range(calls + 5):
                    t = time.perf_counter()
                    res = await s.call_tool(name, {})
                    assert not res.is_error, res
                    times.append(time.perf_counter() - t)
                out[name] = statistics.median(times[5:])
    return out

mcp = asyncio.run(tools())
ref = {"validate": process(["validate"]), "status": process(["--json", "status"])}
print(f"examples/voidcat, {calls} calls per tool in one session (median):\n")
print("| Tool | MCP call | `sanctuary` process | Ratio | Target |")
print("|---|---|---|---|---|")
for name in ("validate", "status"):
    print(f"| `{name}` | {mcp[name]*1000:.1f} ms | {ref[name]*1000:.1f} ms | {mcp[name]/ref[name]:.2f}× | ≤ 30 ms |")
print(f"\nCommand: scripts/bench-mcp.sh {calls}")
PY
