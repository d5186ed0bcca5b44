#!/usr/bin/env python3
"""Small servers for the egress-gateway "cluster in a box" (tests/e2e/cluster.sh).

Python standard library only. Each subcommand runs in the foreground until killed; cluster.sh
starts them inside the box's network namespaces and tracks their PIDs.

  origin     HTTP and HTTPS origins (every name of the box on every address of eg-inet); one JSON
             line per request to --log, with the local address the request arrived at.
  rebind     a DNS responder whose A answer alternates between a public box address and
             forbidden addresses (127.0.0.1, 169.254.169.254) with TTL 0: DNS rebinding.
  blackhole  a "DNS server" that takes queries (UDP and TCP) and never answers.
  canary     TCP listeners that log every connection (put on the gateway's loopback: a gateway
             that dials 127.0.0.1 would show up here).
"""

import argparse
import http.server
import json
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time

LOCK = threading.Lock()


def log_line(path, record):
    record["ts"] = time.time()
    with LOCK, open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record, sort_keys=True) + "\n")


# --- origins -------------------------------------------------------------------------------------


def unmapped(address):
    """(host, port) of a socket address, IPv4-mapped IPv6 written as the IPv4 it carries."""
    host = address[0]
    return (host[7:] if host.startswith("::ffff:") else host, address[1])


def origin(args):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "box-origin/1"
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            local = unmapped(self.connection.getsockname())
            peer = unmapped(self.client_address)
            scheme = "https" if isinstance(self.connection, ssl.SSLSocket) else "http"
            host = self.headers.get("Host", "")
            log_line(
                args.log,
                {
                    "local": f"{local[0]}:{local[1]}",
                    "peer": f"{peer[0]}:{peer[1]}",
                    "host": host,
                    "scheme": scheme,
                    "path": self.path,
                },
            )
            body = f"origin {scheme} host={host} local={local[0]}:{local[1]}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    class Server(http.server.ThreadingHTTPServer):
        # Dual stack: "::" with IPV6_V6ONLY off (Linux's default) takes IPv4 as mapped addresses.
        address_family = socket.AF_INET6
        daemon_threads = True
        allow_reuse_address = True

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    servers = []
    for port in args.http:
        servers.append(Server(("::", port), Handler))
    for port in args.https:
        server = Server(("::", port), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        servers.append(server)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


# --- DNS -----------------------------------------------------------------------------------------


def parse_question(packet):
    """(id, flags, qname, qtype, end of question) of a DNS query."""
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount < 1:
        raise ValueError("no question")
    labels, i = [], 12
    while packet[i] != 0:
        n = packet[i]
        labels.append(packet[i + 1 : i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype = struct.unpack("!H", packet[i + 1 : i + 3])[0]
    return ident, flags, ".".join(labels).lower(), qtype, i + 5


def rebind(args):
    forbidden = args.forbidden
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.addr, 53))
    count = 0
    while True:
        packet, peer = sock.recvfrom(4096)
        try:
            ident, flags, qname, qtype, end = parse_question(packet)
        except (ValueError, IndexError, struct.error):
            continue
        question = packet[12:end]
        answers = b""
        ancount = 0
        answer = None
        if qtype == 1 and qname.endswith(args.zone):
            # Even queries get the public address, odd ones a forbidden address, in turn.
            answer = args.public if count % 2 == 0 else forbidden[(count // 2) % len(forbidden)]
            count += 1
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + socket.inet_aton(answer)
            ancount = 1
        rcode = 0 if qname.endswith(args.zone) else 3
        header = struct.pack("!HHHHHH", ident, 0x8400 | (flags & 0x0100) | rcode, 1, ancount, 0, 0)
        sock.sendto(header + question + answers, peer)
        log_line(args.log, {"qname": qname, "qtype": qtype, "answer": answer, "peer": peer[0]})


def blackhole(args):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((args.addr, 53))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((args.addr, 53))
    tcp.listen(64)
    held = []

    def swallow_tcp():
        while True:
            conn, _ = tcp.accept()
            held.append(conn)  # never read, never answered, never closed

    threading.Thread(target=swallow_tcp, daemon=True).start()
    while True:
        udp.recvfrom(4096)  # and drop it


# --- canary --------------------------------------------------------------------------------------


def canary(args):
    def serve(port):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.addr, port))
        sock.listen(64)
        while True:
            conn, peer = sock.accept()
            log_line(args.log, {"canary": f"{args.addr}:{port}", "peer": f"{peer[0]}:{peer[1]}"})
            conn.close()

    for port in args.port:
        threading.Thread(target=serve, args=(port,), daemon=True).start()
    threading.Event().wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("origin")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--http", type=int, action="append", default=[])
    p.add_argument("--https", type=int, action="append", default=[])
    p.set_defaults(run=origin)
    p = sub.add_parser("rebind")
    p.add_argument("--addr", required=True)
    p.add_argument("--zone", required=True)
    p.add_argument("--public", required=True)
    p.add_argument("--forbidden", action="append", required=True)
    p.add_argument("--log", required=True)
    p.set_defaults(run=rebind)
    p = sub.add_parser("blackhole")
    p.add_argument("--addr", required=True)
    p.set_defaults(run=blackhole)
    p = sub.add_parser("canary")
    p.add_argument("--addr", required=True)
    p.add_argument("--port", type=int, action="append", required=True)
    p.add_argument("--log", required=True)
    p.set_defaults(run=canary)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    args.run(args)


if __name__ == "__main__":
    main()
