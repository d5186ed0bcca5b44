#!/usr/bin/env python3
"""Writes the inputs of the issue 16 replay benchmark: two config trees and an access log.

    gen.py DIR [LINES]

DIR/base and DIR/head are config trees of 20 namespaces with 50 entries each (head drops every
tenth entry and adds one per namespace). DIR/big.jsonl is LINES access-log lines (default
1 000 000) in the gateway's own format, times ascending, drawn from about 12 600 distinct flows
(hosts svc0..svc998 and `added` per namespace; base allows svc0..svc49). DIR/big.jsonl.gz is the
same log gzip-compressed.
"""

import gzip
import json
import os
import random
import sys

NAMESPACES = [f"team{i:02}" for i in range(20)]
ENTRIES = 50
FLOWS = 20_000
GATEWAY = 'listeners:\n  connect: {address: "127.0.0.1:0"}\n'


def entry(name, host, port, protocol):
    return (
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        f"metadata: {{name: {name}}}\nspec:\n  hosts: [\"{host}\"]\n"
        f"  ports: [{{number: {port}, name: p{port}, protocol: {protocol}}}]\n"
    )


def tree(root, head):
    os.makedirs(os.path.join(root, "serviceentries"), exist_ok=True)
    with open(os.path.join(root, "gateway.yaml"), "w") as f:
        f.write(GATEWAY)
    for ns in NAMESPACES:
        docs = [
            entry(f"svc{i}", f"svc{i}.{ns}.example.com", 443, "TLS")
            for i in range(ENTRIES)
            if not (head and i % 10 == 0)
        ]
        if head:
            docs.append(entry("added", f"added.{ns}.example.com", 443, "TLS"))
        folder = os.path.join(root, "serviceentries", ns)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "entries.yaml"), "w") as f:
            f.write("---\n".join(docs))


def flows():
    rng = random.Random(16)
    out = []
    for _ in range(FLOWS):
        ns = rng.choice(NAMESPACES)
        i = rng.randrange(1000)
        host = f"added.{ns}.example.com" if i == 999 else f"svc{i}.{ns}.example.com"
        allowed = i < ENTRIES
        out.append((ns, host, allowed))
    return out


def main():
    root = sys.argv[1]
    lines = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    tree(os.path.join(root, "base"), head=False)
    tree(os.path.join(root, "head"), head=True)
    all_flows = flows()
    rng = random.Random(7)
    plain = open(os.path.join(root, "big.jsonl"), "w")
    packed = gzip.open(os.path.join(root, "big.jsonl.gz"), "wt", compresslevel=6)
    for n in range(lines):
        ns, host, allowed = all_flows[rng.randrange(FLOWS)]
        seconds = n // 100
        line = json.dumps(
            {
                "ts": f"2026-12-07T{seconds // 3600 % 24:02}:{seconds // 60 % 60:02}:{seconds % 60:02}.{n % 1000:03}Z",
                "listener": "connect",
                "namespace": ns,
                "identity": "10.1.4.7",
                "src": f"10.1.4.7:{40000 + n % 20000}",
                "host": host,
                "port": 443,
                "sni": host if allowed else None,
                "decision": "allow" if allowed else "deny",
                "reason": "none" if allowed else "not_allowlisted",
                "service_entry": f"{ns}/{host.split('.')[0]}" if allowed else None,
                "upstream": "203.0.113.7:443" if allowed else None,
                "parent": None,
                "bytes_egress": 1834,
                "bytes_ingress": 52101,
                "duration_ms": 412,
            },
            separators=(",", ":"),
        )
        plain.write(line + "\n")
        packed.write(line + "\n")
    plain.close()
    packed.close()


if __name__ == "__main__":
    main()
