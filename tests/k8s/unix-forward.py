#!/usr/bin/env python3
"""Forwards TCP connections through a Unix socket, so a process in a network namespace of its
own can reach a loopback server of the host's (tests/place_pull.rs: containerd in the sandbox's
network namespace pulls from a registry on the host's 127.0.0.1).

    unix-forward.py tcp-to-unix 127.0.0.1:PORT SOCKET   listen on TCP, connect to SOCKET
    unix-forward.py unix-to-tcp SOCKET 127.0.0.1:PORT   listen on SOCKET, connect to TCP
"""

import os
import socket
import sys
import threading


def pipe(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def tcp(addr):
    host, port = addr.rsplit(":", 1)
    return (host, int(port))


def main():
    mode, listen, target = sys.argv[1:4]
    if mode == "tcp-to-unix":
        server = socket.create_server(tcp(listen))
        connect = lambda: socket.socket(socket.AF_UNIX).__enter__()  # noqa: E731
        dial = lambda s: s.connect(target)  # noqa: E731
    elif mode == "unix-to-tcp":
        if os.path.exists(listen):
            os.unlink(listen)
        server = socket.socket(socket.AF_UNIX)
        server.bind(listen)
        server.listen(64)
        connect = lambda: socket.socket(socket.AF_INET).__enter__()  # noqa: E731
        dial = lambda s: s.connect(tcp(target))  # noqa: E731
    else:
        sys.exit(f"unix-forward.py: unknown mode {mode!r}")
    while True:
        client, _ = server.accept()
        upstream = connect()
        try:
            dial(upstream)
        except OSError as e:
            print(f"unix-forward.py: cannot reach {target}: {e}", file=sys.stderr, flush=True)
            client.close()
            upstream.close()
            continue
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


if __name__ == "__main__":
    main()
