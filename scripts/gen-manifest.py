#!/usr/bin/env python3
"""Writes a large valid manifest (and the equivalent compose file) for benchmarks.

usage: gen-manifest.py NODES OUT_DIR
Writes OUT_DIR/Sanctuary.kdl with about NODES nodes (images, volumes, networks, services,
tasks, tests in fixed proportions) and OUT_DIR/docker-compose.yml with the same services.
"""
import os
import sys

nodes = int(sys.argv[1])
out = sys.argv[2]
os.makedirs(out, exist_ok=True)
groups = max(1, nodes // 10)  # each group: 1 image, 2 volumes, 1 network, 3 services, 2 tasks, 1 test

kdl = ['project "bench"\n']
compose = ['version: "3.8"\nservices:\n']
volumes, networks = [], []
for g in range(groups):
    kdl.append(f'image "img{g}" {{\n    context "ctx"\n}}\n')
    kdl.append(f'volume "data{g}"\nvolume "logs{g}"\nnetwork "net{g}"\n')
    volumes += [f"data{g}", f"logs{g}"]
    networks.append(f"net{g}")
    for s in range(3):
        name = f"svc{g}x{s}"
        port = 20000 + g * 3 + s
        dep = f'    depends-on "svc{g}x0" condition="healthy"\n' if s else ""
        kdl.append(
            f'service "{name}" {{\n'
            f'    image "img{g}"\n'
            f'    command "httpd" "-f" "-p" "{port}"\n'
            f'    env NAME="{name}" PORT="{port}"\n'
            f'    port {port} host={port}\n'
            f'    mount "data{g}" "/data"\n'
            f'    mount "logs{g}" "/logs"\n'
            f'    network "net{g}" alias="{name}"\n'
            f'    restart "unless-stopped"\n'
            f'    resources cpus=0.5 memory="64m" pids=64\n'
            f'    health {{\n        cmd "wget" "-qO-" "http://127.0.0.1:{port}/"\n        interval "2s"; timeout "1s"; retries 3\n    }}\n'
            f'{dep}}}\n'
        )
        compose.append(
            f"  {name}:\n    image: img{g}\n    command: [httpd, -f, -p, '{port}']\n"
            f"    environment: {{NAME: {name}, PORT: '{port}'}}\n    ports: ['{port}:{port}']\n"
            f"    volumes: ['data{g}:/data', 'logs{g}:/logs']\n    networks: {{net{g}: {{aliases: [{name}]}}}}\n"
            f"    restart: unless-stopped\n    cpus: 0.5\n    mem_limit: 64m\n    pids_limit: 64\n"
            f"    healthcheck: {{test: [CMD, wget, -qO-, 'http://127.0.0.1:{port}/'], interval: 2s, timeout: 1s, retries: 3}}\n"
        )
        if s:
            compose.append(f"    depends_on: {{svc{g}x0: {{condition: service_healthy}}}}\n")
    kdl.append(f'task "gen{g}" {{\n    description "generate {g}"\n    run "echo {g} > out{g}.txt"\n    outputs "out{g}.txt"\n}}\n')
    kdl.append(f'task "pack{g}" {{\n    run "cat out{g}.txt"\n    depends-on "gen{g}"\n}}\n')
    kdl.append(f'test "probe{g}" {{\n    needs "svc{g}x1"\n    http "http://127.0.0.1:{20000 + g * 3 + 1}/" status=200\n}}\n')

compose.append("volumes:\n" + "".join(f"  {v}: {{}}\n" for v in volumes))
compose.append("networks:\n" + "".join(f"  {n}: {{}}\n" for n in networks))
with open(os.path.join(out, "Sanctuary.kdl"), "w") as f:
    f.write("".join(kdl))
with open(os.path.join(out, "docker-compose.yml"), "w") as f:
    f.write("".join(compose))
print(f"{groups * 10} nodes in {out}/Sanctuary.kdl")
