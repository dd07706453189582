"""A stand-in for the `docker` command, for the deploy and rollback script tests.

Why a stand-in: there is no Docker engine on this machine (nor in the test container), and the
scripts' logic -- what they run, in which order, what they record, when they roll back -- is
what these tests check; the real images and `docker compose` run in GitHub Actions.

It records every call (argv, working directory, the EF_TAG compose would use: the environment's,
else the last one in .env) as a JSON line in $STANDIN_DOCKER_LOG. `compose pull` fails for the
tags in $STANDIN_DOCKER_MISSING (comma-separated); `compose up` writes the tag to
$STANDIN_DOCKER_RUNNING, which the test's stand-in stack reads to decide how healthy it is;
`compose ps --services` lists ef_backend while something runs; `compose exec` fails when
$STANDIN_DOCKER_FAIL_EXEC is set.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _tag() -> str:
    if "EF_TAG" in os.environ:
        return os.environ["EF_TAG"]
    env = Path.cwd() / ".env"
    tags = [line[7:] for line in env.read_text().splitlines() if line.startswith("EF_TAG=")]
    return tags[-1] if tags else "latest"


def main(argv: list[str]) -> int:
    tag = _tag()
    with open(os.environ["STANDIN_DOCKER_LOG"], "a") as log:
        log.write(json.dumps({"argv": argv, "cwd": os.getcwd(), "tag": tag}) + "\n")
    if argv[:2] == ["compose", "pull"]:
        missing = set(filter(None, os.environ.get("STANDIN_DOCKER_MISSING", "").split(",")))
        if tag in missing:
            print(f"manifest for echoforge-backend:{tag} not found", file=sys.stderr)
            return 1
    running = Path(os.environ["STANDIN_DOCKER_RUNNING"])
    if argv[:2] == ["compose", "up"]:
        running.write_text(tag)
    if argv[:2] == ["compose", "ps"] and running.exists() and running.read_text():
        print("ef_backend\nef_tts")
    if argv[:2] == ["compose", "exec"] and os.environ.get("STANDIN_DOCKER_FAIL_EXEC"):
        print("ef backup: database is locked", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
