#!/usr/bin/env python3
"""Release notes for a tag: the commits since the previous release tag and the images' sizes.

    python3 scripts/release_notes.py v1.4.0 [--images images.json] > notes.md

``images.json`` (written by the release workflow) maps each image reference to its size in bytes
and its digest: ``{"ghcr.io/o/echoforge-backend:1.4.0": {"size": 123, "digest": "sha256:..."}}``.
The version in the title is the tag, which the workflow has checked against ``VERSION``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def _is_ancestor(older: str, newer: str) -> bool:
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", older, newer], cwd=REPO, check=False
    )
    return result.returncode == 0


def notes(tag: str, images: dict[str, dict[str, object]]) -> str:
    tags = _git("tag", "--list", "v[0-9]*.[0-9]*.[0-9]*", "--sort=-v:refname").splitlines()
    previous = next((t for t in tags if t != tag and _is_ancestor(t, tag)), None)
    span = f"{previous}..{tag}" if previous else tag
    commits = _git("log", "--no-merges", "--format=- %s (%h)", span).splitlines()
    lines = [f"# EchoForge {tag}", ""]
    lines += [f"## Changes since {previous}" if previous else "## Changes (first release)", ""]
    lines += commits or ["- (no commits)"]
    lines += ["", "## Images", "", "| image | size | digest |", "| --- | ---: | --- |"]
    for ref, info in sorted(images.items()):
        size = int(str(info.get("size", 0)))
        lines.append(f"| `{ref}` | {size / 1e6:.1f} MB | `{info.get('digest', '')}` |")
    if not images:
        lines.append("| (none built) | | |")
    lines += [
        "",
        "Deploy: `scripts/deploy.sh " + tag + "` on the host (runbooks/deploy.md); "
        "the compose files and `.env.example` are attached.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tag", help="the release tag, vMAJOR.MINOR.PATCH")
    parser.add_argument("--images", type=Path, help="JSON: image reference -> size, digest")
    args = parser.parse_args(argv)
    images = json.loads(args.images.read_text()) if args.images else {}
    sys.stdout.write(notes(args.tag, images))
    return 0


if __name__ == "__main__":
    sys.exit(main())
