"""Drives `sanctuary mcp` with the MCP Python SDK's stdio client, as Claude Code would: it
initialises, lists the tools, makes the calls given, and prints one JSON document with what
came back.

usage: mcp_session.py SANCTUARY_BINARY WORKDIR CALLS_JSON

CALLS_JSON is a list of [tool, arguments]. Between calls, the pseudo-tool "__write" with
{"path", "text"} writes a file in WORKDIR (to change the manifest under a running server), and
"__sanctuary" with {"args": [...]} runs the sanctuary CLI there (to change the stack).
"""

import asyncio
import json
import os
import subprocess
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main():
    binary, workdir, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    env = dict(os.environ)
    params = StdioServerParameters(command=binary, args=["mcp"], cwd=workdir, env=env)
    out = {"calls": []}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["protocol"] = init.protocol_version
            out["server"] = init.server_info.name
            tools = await session.list_tools()
            out["tools"] = [t.model_dump(mode="json", by_alias=True) for t in tools.tools]
            for name, args in calls:
                if name == "__sanctuary":
                    subprocess.run([binary, *args["args"]], cwd=workdir, check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    continue
                if name == "__write":
                    with open(os.path.join(workdir, args["path"]), "w") as f:
                        f.write(args["text"])
                    continue
                try:
                    res = await session.call_tool(name, args)
                    out["calls"].append(
                        {
                            "name": name,
                            "error": bool(res.is_error),
                            "structured": res.structured_content,
                            "text": [c.text for c in res.content if c.type == "text"],
                        }
                    )
                except Exception as e:  # a JSON-RPC error answer
                    out["calls"].append({"name": name, "exception": str(e)})
    print(json.dumps(out))


asyncio.run(main())
