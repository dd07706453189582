"""After start-up both services freeze their start-up heap once (ef_common.heap), and the
collector still frees what is made later.

Run in a fresh interpreter: freezing is once per process, and the test process has long since
started apps of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import gc, json, sys, weakref
from fastapi.testclient import TestClient

which = sys.argv[1]
if which == "backend":
    from ef_backend.main import create_app
    path = "/health/live"
else:
    from ef_tts.app import create_app
    path = "/health/live"

def frozen(obj):
    # Tracked by the collector, yet in none of its generations: in the permanent one.
    return gc.is_tracked(obj) and not any(o is obj for o in gc.get_objects())


class Node:
    pass


def cycle():
    node = Node()
    node.me = node  # a cycle: only the collector can free it
    return weakref.ref(node)


result = {"before": gc.get_freeze_count()}
# Unreachable before start-up: it must be collected, never frozen. Automatic collections are
# off until the freeze, so only the collection that precedes the freeze can free it.
gc.disable()
startup_garbage = cycle()
app = create_app()
with TestClient(app) as client:
    result["status"] = client.get(path).status_code
    result["after_startup"] = gc.get_freeze_count()
    gc.enable()
    result["app_frozen"] = frozen(app.router.routes)
later = [object()]  # made after start-up
second = create_app()
with TestClient(second) as client:  # a second app in the same process
    result["later_frozen"] = frozen(later)
    result["second_app_frozen"] = frozen(second.router.routes)
result["startup_garbage_freed"] = startup_garbage() is None
later_garbage = cycle()
gc.collect()
result["cycle_freed"] = later_garbage() is None
print(json.dumps(result))
"""


def _run(which: str, tmp_path: Path) -> dict[str, object]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "EF_DATA_DIR": str(tmp_path / "data"),
        "EF_TTS_URL": "http://127.0.0.1:9",
        "EF_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, which],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("service", ["backend", "tts"])
def test_each_service_freezes_its_start_up_heap_once(service: str, tmp_path: Path) -> None:
    result = _run(service, tmp_path)
    assert result["status"] == 200
    assert result["before"] == 0
    # The app, its routes and every imported module: tens of thousands of objects.
    after = result["after_startup"]
    assert isinstance(after, int) and after > 20_000, result
    assert result["app_frozen"] is True
    assert result["later_frozen"] is False, "frozen once per process, not per app"
    assert result["second_app_frozen"] is False
    assert result["cycle_freed"] is True
    assert result["startup_garbage_freed"] is True
