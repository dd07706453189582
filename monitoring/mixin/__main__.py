"""``python -m monitoring.mixin [--check]``: write the generated files, or fail on drift."""

from __future__ import annotations

import argparse
import logging
import sys

from monitoring.mixin.render import drift, write
from monitoring.mixin.usage import markdown

log = logging.getLogger("monitoring.mixin")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.mixin", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a generated file drifted"
    )
    parser.add_argument(
        "--usage",
        action="store_true",
        help="print which alerts and dashboards read each metric (markdown) and exit",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.usage:
        sys.stdout.write(markdown() + "\n")
        return 0
    if args.check:
        stale = drift()
        for path in stale:
            log.error("out of date: %s (run `make generate`)", path)
        return 1 if stale else 0
    for path in write():
        log.info("wrote %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
