#!/usr/bin/env python3
"""Prints N distinct free TCP ports on 127.0.0.1, space-separated.

With --grpc-pairs, every printed port P also has P+10000 free: SeaweedFS derives gRPC ports
that way, and one of its components (the admin worker) ignores an explicit gRPC port.
All sockets stay bound until every port is chosen, so the ports are distinct; another
process could still take one before the caller binds it (a small window, accepted here).
"""
import argparse
import socket

GRPC_OFFSET = 10000


def bind(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("count", type=int)
    parser.add_argument("--grpc-pairs", action="store_true")
    args = parser.parse_args()
    held, ports = [], []
    for _ in range(1000):
        if len(ports) == args.count:
            break
        sock = bind(0)
        port = sock.getsockname()[1]
        held.append(sock)
        if args.grpc_pairs:
            partner = bind(port + GRPC_OFFSET) if port + GRPC_OFFSET <= 65535 else None
            if partner is None:
                continue
            held.append(partner)
        ports.append(port)
    if len(ports) != args.count:
        raise SystemExit(f"free_ports.py: found only {len(ports)} of {args.count} free ports")
    print(" ".join(map(str, ports)))
    for sock in held:
        sock.close()


if __name__ == "__main__":
    main()
