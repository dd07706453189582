"""``ef backup``, ``ef verify`` and ``ef restore`` on SQLite, as subprocesses on real files."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from ef_backend.backup import schema
from ef_backend.core import db
from ef_backend.services.queue import JobQueue

from tests.backend.cli.helpers import ef, env_for
from tests.backend.conftest import BackendFactory
from tests.utils.jobs import new_job
from tests.utils.procs import VENV_BIN

WRITERS = 50


def _ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM job")}


@pytest.mark.slow
def test_backup_during_50_writers_restores_every_committed_row(data: Path, tmp_path: Path) -> None:
    """Fifty threads enqueue jobs through the real queue code while ``ef backup`` runs: every
    job committed before the backup started is in it, nothing half-written is, and the
    restored database holds exactly the backup's rows."""
    engine = db.make_engine(f"sqlite:///{data / 'db.sqlite'}")
    queue = JobQueue(db.session_factory(engine), max_queued=100_000, lease_s=30)
    committed: list[tuple[float, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            job, _ = queue.enqueue(new_job(f"w{n}-{i}"))
            with lock:
                committed.append((time.monotonic(), job.id))
            i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    try:
        while len(committed) < 200:
            time.sleep(0.01)
        started = time.monotonic()
        ran = ef("backup", "--json", env=env_for(data))
        while len(committed) < 400:  # the writers kept going after the backup
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        engine.dispose()
    assert ran.code == 0, ran.stderr
    path = Path(ran.json()["path"])
    in_backup = _ids(path)
    before = {job_id for at, job_id in committed if at < started}
    everything = {job_id for _, job_id in committed} | _ids(data / "db.sqlite")
    assert before <= in_backup, f"{len(before - in_backup)} committed jobs missing"
    assert in_backup <= everything
    assert len(in_backup) < len(everything)  # writes went on while it ran
    assert ran.json()["tables"]["job"] == len(in_backup)
    assert ef("verify", str(path)).code == 0

    other = tmp_path / "restored"
    restored = ef("restore", str(path), "--json", env=env_for(other))
    assert restored.code == 0, restored.stdout + restored.stderr
    assert _ids(other / "db.sqlite") == in_backup


def test_backup_json_manifest_checksum_and_keep(data: Path) -> None:
    paths = []
    for _ in range(3):
        ran = ef("backup", "--json", env=env_for(data, EF_BACKUP_KEEP="2"))
        assert ran.code == 0, ran.stderr
        paths.append(Path(ran.json()["path"]))
    assert paths[0].parent == data / "backups"
    assert sorted(p.name for p in (data / "backups").iterdir()) == sorted(
        f"{p.name}{suffix}" for p in paths[1:] for suffix in ("", ".json", ".sha256")
    )
    assert ran.json()["pruned"] == [str(paths[0])]
    manifest = json.loads(paths[2].with_name(paths[2].name + ".json").read_text())
    assert manifest["revision"] == schema.head()
    assert manifest["tables"] == {"alembic_version": 1, "cache_entry": 0, "job": 3}
    checksum = paths[2].with_name(paths[2].name + ".sha256").read_text()
    assert checksum == f"{manifest['sha256']}  {paths[2].name}\n"

    text = ef("backup", env=env_for(data))
    assert text.code == 0
    assert text.stdout.startswith(f"backup written: {data / 'backups'}/ef-")
    assert "rows: alembic_version=1, cache_entry=0, job=3" in text.stdout


def _backup(data: Path) -> Path:
    ran = ef("backup", "--json", env=env_for(data))
    assert ran.code == 0, ran.stderr
    return Path(ran.json()["path"])


def test_truncated_or_altered_backup_fails_verification(data: Path) -> None:
    path = _backup(data)
    good = ef("verify", str(path), "--json")
    assert good.code == 0
    assert [c["name"] for c in good.json()["checks"]] == [
        "checksum",
        "integrity_check",
        "foreign_key_check",
        "schema",
        "row_counts",
    ]
    manifest = path.with_name(path.name + ".json").read_text()
    size = path.stat().st_size

    truncated = path.with_name("truncated.sqlite")
    truncated.write_bytes(path.read_bytes()[: size // 2])
    truncated.with_name("truncated.sqlite.json").write_text(manifest)
    ran = ef("verify", str(truncated))
    assert ran.code == 1
    assert f"({size // 2} bytes, manifest says {size}): the file was truncated or changed" in (
        ran.stdout
    )
    assert ran.stdout.rstrip().endswith(f"{truncated}: FAILED verification")

    altered = path.with_name("altered.sqlite")
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF  # one byte in the last page
    altered.write_bytes(bytes(raw))
    altered.with_name("altered.sqlite.json").write_text(manifest)
    ran = ef("verify", str(altered), "--json")
    assert ran.code == 1
    checksum = ran.json()["checks"][0]
    assert checksum["name"] == "checksum" and checksum["ok"] is False
    assert checksum["detail"].endswith(
        f"({size} bytes, manifest says {size}): the file was truncated or changed after the "
        "backup was written"
    )

    lonely = path.with_name("lonely.sqlite")
    lonely.write_bytes(path.read_bytes())
    ran = ef("verify", str(lonely), "--json")
    assert ran.code == 1
    assert ran.json()["checks"] == [
        {
            "name": "manifest",
            "ok": False,
            "detail": "lonely.sqlite.json is missing: every backup has a manifest beside it "
            "(written by `ef backup`)",
        }
    ]

    before = _ids(data / "db.sqlite")
    refused = ef("restore", str(truncated), "--json", env=env_for(data))
    assert refused.code == 1
    assert refused.json()["error"].startswith(
        "truncated.sqlite failed verification, nothing was changed: checksum: sha256"
    )
    assert _ids(data / "db.sqlite") == before


def _rewrite(path: Path, revision: str) -> None:
    """Change the backup's schema revision and write a matching manifest (only the schema
    check can then fail)."""
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.close()
    from ef_backend.backup.manifest import read_manifest, sha256_of, write_manifest

    manifest = read_manifest(path)
    manifest.revision = revision
    manifest.sha256 = sha256_of(path)
    manifest.size_bytes = path.stat().st_size
    write_manifest(path, manifest)


def test_restore_refuses_a_newer_schema_and_keeps_the_replaced_database(
    data: Path, tmp_path: Path
) -> None:
    path = _backup(data)
    newer = tmp_path / "newer.sqlite"
    newer.write_bytes(path.read_bytes())
    newer.with_name("newer.sqlite.json").write_text(path.with_name(path.name + ".json").read_text())
    _rewrite(newer, "9999_from_the_future")

    verdict = ef("verify", str(newer), "--json")
    assert verdict.code == 1
    failed = [c for c in verdict.json()["checks"] if not c["ok"]]
    assert failed == [
        {
            "name": "schema",
            "ok": False,
            "detail": "schema revision 9999_from_the_future is unknown to this version (newest "
            f"known: {schema.head()}): the backup comes from a newer EchoForge; upgrade before "
            "restoring",
        }
    ]
    refused = ef("restore", str(newer), env=env_for(data))
    assert refused.code == 4
    assert refused.stderr == (
        f"ef: newer.sqlite: schema revision 9999_from_the_future is unknown to this version "
        f"(newest known: {schema.head()}): the backup comes from a newer EchoForge; upgrade "
        "before restoring\n"
    )
    assert sorted(p.name for p in data.iterdir()) == ["backups", "db.sqlite"]

    # A good backup replaces the database, which is kept aside, byte for byte.
    with sqlite3.connect(data / "db.sqlite") as conn:
        conn.execute("DELETE FROM job")
    conn.close()
    current = (data / "db.sqlite").read_bytes()
    restored = ef("restore", str(path), "--json", env=env_for(data))
    assert restored.code == 0, restored.stdout + restored.stderr
    body = restored.json()
    [aside] = [Path(p) for p in body["kept_aside"]]
    assert aside.name.startswith("db.sqlite.replaced-")
    assert aside.read_bytes() == current
    assert len(_ids(data / "db.sqlite")) == 3
    assert body["revision_after"] == schema.head() and body["stopped"] is None


def test_restore_migrates_an_older_backup_forward(tmp_path: Path) -> None:
    """A backup at the first revision is brought to head (a no-op while 0001 is the head)."""
    old = tmp_path / "old"
    old.mkdir()
    db.migrate(f"sqlite:///{old / 'db.sqlite'}", "0001")
    path = _backup(old)
    ran = ef("restore", str(path), "--json", env=env_for(tmp_path / "new"))
    assert ran.code == 0, ran.stdout + ran.stderr
    body = ran.json()
    assert body["revision_before"] == "0001"
    assert body["revision_after"] == schema.head()
    assert body["migrated"] is (schema.head() != "0001")


@pytest.mark.server
def test_restore_refuses_while_the_service_runs_unless_told_to_stop_it(
    backend_factory: BackendFactory, tmp_path: Path
) -> None:
    directory = tmp_path / "served"
    server = backend_factory(directory)
    path = _backup(directory)
    refused = ef("restore", str(path), "--json", env=env_for(directory))
    assert refused.code == 4
    assert refused.json()["error"].startswith(
        f"the service is running on {(directory / 'db.sqlite').resolve()} ("
    )
    assert refused.json()["error"].endswith(
        "): stop it first, or pass --stop to have ef restore stop it"
    )
    assert server.proc is not None and server.proc.poll() is None

    stopped = ef("restore", str(path), "--stop", env=env_for(directory))
    assert stopped.code == 0, stopped.stdout + stopped.stderr
    assert stopped.stdout.startswith(f"stopped ef serve (pid {server.proc.pid})\n")
    # uvicorn ends a graceful SIGTERM shutdown by re-raising the signal.
    assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert "Finished server process" in server.log()


def test_usage_and_missing_files_exit_codes(tmp_path: Path) -> None:
    """Usage errors exit 2; the old name ``ef-backend`` is the same program."""
    alias = subprocess.run(
        [str(VENV_BIN / "ef-backend"), "--help"], capture_output=True, text=True, check=True
    )
    assert alias.stdout.startswith("usage: ef [-h] COMMAND ...")
    assert "  4  refused (by the service" in alias.stdout
    migrated = ef("migrate", "--json", env=env_for(tmp_path / "fresh"))
    assert migrated.code == 0
    assert migrated.json()["revision"] == migrated.json()["head"] == schema.head()
    assert ef("verify").code == 2
    assert ef("restore").code == 2
    missing = ef("verify", str(tmp_path / "nope.sqlite"), "--json")
    assert missing.code == 1
    assert missing.json()["checks"] == [
        {"name": "file", "ok": False, "detail": f"{tmp_path / 'nope.sqlite'} does not exist"}
    ]
    empty = ef("restore", "--latest", "--json", env=env_for(tmp_path / "empty"))
    assert empty.code == 1
    assert empty.json() == {
        "error": f"no backups in {tmp_path / 'empty' / 'backups'}",
        "exit_code": 1,
    }
