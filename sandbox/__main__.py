"""`python -m sandbox`: the local demo (emulated AWS, the Kubernetes API test server, the sample app) end to end."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="run the local sandbox demo (emulated AWS + Kubernetes API, sample app)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the servers running after the demo (Ctrl-C to stop)")
    parser.add_argument("--output", choices=("table", "json"), default="table")
    args = parser.parse_args(argv)
    from sandbox.demo import run_demo

    return run_demo(keep=args.keep, output=args.output)


if __name__ == "__main__":
    sys.exit(main())
