"""Run the test server as a process: prints `READY <url>` once serving, runs until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from sandbox.kubeapi.server import KubeAPIServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.kubeapi", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--kubeconfig-out", metavar="PATH", help="write a kubeconfig for the server here")
    parser.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    parser.add_argument("--token", help="the bearer token to accept (default: random)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = KubeAPIServer(tls=not args.no_tls, token=args.token, port=args.port).start()
    try:
        if args.kubeconfig_out:
            server.write_kubeconfig(args.kubeconfig_out)
        print(f"READY {server.url}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
