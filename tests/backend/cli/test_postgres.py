"""PostgreSQL operations against a real server: ``ef db copy`` from SQLite, ``pg_dump`` backups
with the same verification, restore (refused while a backend is connected), and two backends
sharing one queue with one of them killed with ``kill -9``."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psycopg
import pytest
from ef_backend.backup import schema

from tests.backend.api.helpers import client_for, long_text, wait_job
from tests.backend.cli.helpers import ef
from tests.backend.conftest import BackendFactory
from tests.utils.postgres import PASSWORD, PostgresServer
from tests.utils.prometheus import metric_value

pytestmark = pytest.mark.server


def _count(url: str, table: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        return int(row[0])


def test_db_copy_then_pg_dump_backup_verify_and_restore(
    data: Path,
    postgres: PostgresServer,
    tmp_path: Path,
) -> None:
    url = postgres.new_database()
    copied = ef("db", "copy", "--to", url, "--json", env={"EF_DATA_DIR": str(data)})
    assert copied.code == 0, copied.stdout + copied.stderr
    body = copied.json()
    assert body["tables"] == {"cache_entry": 0, "job": 3}
    assert body["database_url"] == url.replace(PASSWORD, "***")
    assert _count(url, "job") == 3

    again = ef("db", "copy", "--to", url, env={"EF_DATA_DIR": str(data)})
    assert again.code == 4
    assert again.stderr == (
        "ef: the target database is not empty (job=3); copy into a new, empty database\n"
    )

    env = {"EF_DATABASE_URL": url, "EF_BACKUP_DIR": str(tmp_path / "pg-backups")}
    backup = ef("backup", "--json", env=env)
    assert backup.code == 0, backup.stdout + backup.stderr
    path = Path(backup.json()["path"])
    assert path.suffix == ".dump" and path.parent == tmp_path / "pg-backups"
    assert backup.json()["tables"] == {"alembic_version": 1, "cache_entry": 0, "job": 3}
    verified = ef("verify", str(path), "--json")
    assert verified.code == 0, verified.stdout
    assert [c["name"] for c in verified.json()["checks"]] == [
        "checksum",
        "archive",
        "schema",
        "row_counts",
    ]
    assert verified.json()["revision"] == schema.head()

    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(path.read_bytes()[:-200])
    damaged.with_name("damaged.dump.json").write_text(
        path.with_name(path.name + ".json").read_text()
    )
    failed = ef("verify", str(damaged), "--json")
    assert failed.code == 1
    names = {c["name"]: c for c in failed.json()["checks"]}
    assert names["checksum"]["ok"] is False
    assert names["archive"]["ok"] is False
    assert names["archive"]["detail"].startswith("not a readable pg_dump archive: pg_restore")

    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM job")
    restored = ef("restore", str(path), "--json", env=env)
    assert restored.code == 0, restored.stdout + restored.stderr
    assert _count(url, "job") == 3
    [aside] = [Path(p) for p in restored.json()["kept_aside"]]
    assert aside.name.startswith("replaced-") and aside.suffix == ".dump"
    assert ef("verify", str(aside), "--json").json()["tables"]["job"] == 0


def test_restore_refuses_while_a_backend_is_connected(
    postgres: PostgresServer, backend_factory: BackendFactory, tmp_path: Path
) -> None:
    url = postgres.new_database()
    env = {"EF_DATABASE_URL": url, "EF_BACKUP_DIR": str(tmp_path / "b")}
    assert ef("migrate", env=env).code == 0
    path = Path(ef("backup", "--json", env=env).json()["path"])
    server = backend_factory(tmp_path / "data", EF_DATABASE_URL=url)
    refused = ef("restore", str(path), env=env)
    assert refused.code == 4
    assert refused.stderr.startswith("ef: ")
    assert refused.stderr.endswith(
        " backend session(s) are connected to this database: stop every backend replica "
        "first (docker compose stop ef_backend)\n"
    )
    assert ef("restore", str(path), "--stop", env=env).code == 4
    server.stop()
    assert ef("restore", str(path), env=env).code == 0


@pytest.mark.slow
def test_two_backends_share_one_queue_and_survive_a_kill_9(
    postgres: PostgresServer, backend_factory: BackendFactory, tmp_path: Path
) -> None:
    """Two replicas on one PostgreSQL database (and one shared data volume for the audio
    cache) take jobs from one queue (SELECT ... FOR UPDATE SKIP LOCKED). One is killed with
    SIGKILL while it runs a job; the other recovers the job when its lease expires, and every
    job finishes exactly once: each replica's count of finished jobs equals the jobs whose
    final worker it is, and together they are all the jobs."""
    url = postgres.new_database()
    shared = tmp_path / "shared-volume"
    settings = {
        "EF_DATABASE_URL": url,
        "EF_TTS_CONCURRENCY": "1",
        "EF_JOB_LEASE_S": "2",
        "EF_QUEUE_MAX": "50",
    }
    first = backend_factory(shared, **settings)
    second = backend_factory(shared, **settings)
    assert first.proc is not None and second.proc is not None
    pids = {first.proc.pid: "first", second.proc.pid: "second"}
    with client_for(first) as client:
        ids = [
            client.post("/api/v1/jobs", json={"text": long_text(3)}).json()["id"] for _ in range(8)
        ]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until each replica runs a job
            running = client.get("/api/admin/jobs", params={"status": "running"}).json()["data"]
            owners = {pids.get(int(str(j["worker_id"]).split(":")[1])) for j in running}
            if owners == {"first", "second"}:
                break
            time.sleep(0.05)
        assert owners == {"first", "second"}, running
        victim = next(
            j["id"] for j in running if int(str(j["worker_id"]).split(":")[1]) == first.proc.pid
        )
    first.kill(signal.SIGKILL)

    with client_for(second) as client:
        for job_id in ids:
            wait_job(client, job_id, timeout=300)
        jobs = {
            j["id"]: j for j in client.get("/api/admin/jobs", params={"limit": 200}).json()["data"]
        }
        finished_by_second = metric_value(
            client.get("/metrics").text, "ef_tts_jobs_total", {"outcome": "succeeded"}
        )
    assert set(jobs) == set(ids)
    assert {j["status"] for j in jobs.values()} == {"succeeded"}
    final = {job_id: pids[int(str(j["worker_id"]).split(":")[1])] for job_id, j in jobs.items()}
    assert final[victim] == "second" and jobs[victim]["attempts"] == 2
    assert finished_by_second == sum(1 for owner in final.values() if owner == "second")
    assert httpx.get(second.url + "/health/ready").status_code == 200
