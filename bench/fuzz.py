"""The long schemathesis run: many generated cases per operation against a real backend.

The same command as the bounded test (tests/utils/fuzz.py: no 5xx, every status code, body,
content type and header as documented, every operation including the admin API), with
``--max-examples`` cases per operation instead of 5, and schemathesis' stateful phase: sequences
along the links it infers (a job made, then read, fetched and cancelled by its id). Pass or
fail, with schemathesis' summary.

    .venv/bin/python bench/fuzz.py                          # what `make bench` runs
    .venv/bin/python bench/fuzz.py --max-examples 500 --seed 7
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.stack import stack, workdir
from tests.utils.fuzz import PHASES, run_schemathesis


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--keep", type=Path, help="keep logs, data and the JUnit report here")
    args = parser.parse_args()
    with workdir(args.keep) as root, stack(root) as running:
        running.engine()
        backend = running.backend()
        started = time.monotonic()
        result = run_schemathesis(
            backend.url,
            max_examples=args.max_examples,
            report_dir=root / "schemathesis",
            seed=args.seed,
            timeout=3 * 3600,
            phases=(*PHASES, "stateful"),
        )
        elapsed = time.monotonic() - started
    summary = result.stdout.split("SUMMARY", 1)[-1]
    cases = f"{args.max_examples} examples per operation"
    print(f"schemathesis, {cases}, seed {args.seed}, {elapsed:.0f} s")
    print(summary.strip())
    print("clean: no 5xx, everything as documented" if result.returncode == 0 else "FAILURES above")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
