"""scripts/release_notes.py on a small git history with release tags."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.utils.procs import REPO


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def _history(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "release_notes.py", repo / "scripts")
    _git(repo, "init", "-q", "-b", "main")
    for n, subject in enumerate(["First cut", "Second: the proxy", "Third: deploy script"]):
        (repo / f"f{n}").write_text(str(n))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", subject)
        if n == 0:
            _git(repo, "tag", "-a", "v0.1.0", "-m", "v0.1.0")
    _git(repo, "tag", "-a", "v0.2.0", "-m", "v0.2.0")
    return repo


def _notes(repo: Path, *args: str) -> str:
    script = repo / "scripts" / "release_notes.py"
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, check=True
    )
    return result.stdout


def test_commits_since_the_previous_tag_and_image_sizes(tmp_path: Path) -> None:
    repo = _history(tmp_path)
    images = tmp_path / "images.json"
    images.write_text(
        json.dumps(
            {
                "ghcr.io/o/echoforge-backend:0.2.0": {"size": 123_456_789, "digest": "sha256:ab"},
                "ghcr.io/o/echoforge-tts:0.2.0-cpu": {"size": 1_500_000_000, "digest": "sha256:cd"},
            }
        )
    )
    notes = _notes(repo, "v0.2.0", "--images", str(images))
    assert notes.startswith("# EchoForge v0.2.0\n\n## Changes since v0.1.0\n\n")
    assert "- Second: the proxy (" in notes and "- Third: deploy script (" in notes
    assert "First cut" not in notes
    assert "| `ghcr.io/o/echoforge-backend:0.2.0` | 123.5 MB | `sha256:ab` |" in notes
    assert "| `ghcr.io/o/echoforge-tts:0.2.0-cpu` | 1500.0 MB | `sha256:cd` |" in notes


def test_first_release_lists_every_commit(tmp_path: Path) -> None:
    notes = _notes(_history(tmp_path), "v0.1.0")
    assert "## Changes (first release)\n\n- First cut (" in notes
    assert "Second" not in notes
    assert "| (none built) | | |" in notes
