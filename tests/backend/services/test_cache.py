"""The audio cache: keys, layout, atomic writes, LRU eviction under the cap, purge, stats."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from ef_backend.core.db import SessionFactory
from ef_backend.core.errors import StorageError
from ef_backend.models import AudioFormat, CacheEntry
from ef_backend.services.cache import AudioCache, cache_key, relative_path
from prometheus_client import REGISTRY
from sqlalchemy import Engine, event


def key(n: int) -> str:
    return cache_key("piper", "joe", "joe", 1.0, AudioFormat.wav, f"sentence {n}")


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def cache(tmp_path: Path, sessions: SessionFactory) -> AudioCache:
    return AudioCache(tmp_path / "audio-cache", sessions, max_bytes=10_000)


def test_cache_key_depends_on_every_field() -> None:
    base = ("piper", "joe-medium", "joe", 1.0, AudioFormat.wav, "Hello.")
    reference = cache_key(*base)
    assert len(reference) == 64 and int(reference, 16) >= 0
    assert cache_key(*base) == reference
    variants = [
        ("coqui", *base[1:]),
        (base[0], "other-model", *base[2:]),
        (*base[:2], "amy", *base[3:]),
        (*base[:3], 1.25, *base[4:]),
        (*base[:4], AudioFormat.mp3, base[5]),
        (*base[:5], "Hello!"),
    ]
    keys = {cache_key(*variant) for variant in variants}  # type: ignore[arg-type]
    assert len(keys) == len(variants) and reference not in keys
    # Field boundaries cannot be shifted to forge a collision.
    assert cache_key("a", "bc", "v", 1.0, "wav", "t") != cache_key("ab", "c", "v", 1.0, "wav", "t")


def test_round_trip_and_sharded_path(cache: AudioCache, tmp_path: Path) -> None:
    k = key(1)
    assert cache.get(k) is None
    cache.put(k, AudioFormat.mp3, b"ID3 audio bytes", duration_s=1.5)
    hit = cache.get(k)
    assert hit is not None
    assert (hit.data, hit.format, hit.duration_s) == (b"ID3 audio bytes", AudioFormat.mp3, 1.5)
    path = tmp_path / "audio-cache" / k[:2] / k[2:4] / f"{k}.mp3"
    assert path.read_bytes() == b"ID3 audio bytes"
    assert cache.path_for(k, AudioFormat.mp3) == path
    # ef_proxy sends cached files itself (X-Accel-Redirect) through the group; others: nothing.
    assert path.stat().st_mode & 0o777 == 0o640
    assert relative_path(k, AudioFormat.mp3) == f"{k[:2]}/{k[2:4]}/{k}.mp3"


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 64, "abc", "g" * 64, "a" * 63 + "/"])
def test_no_path_from_anything_but_a_key(cache: AudioCache, bad: str) -> None:
    with pytest.raises(ValueError, match="sha256"):
        cache.path_for(bad, AudioFormat.wav)


def test_lookups_are_counted_by_result(cache: AudioCache) -> None:
    hits, misses = (
        sample("ef_audio_cache_requests_total", result="hit"),
        sample("ef_audio_cache_requests_total", result="miss"),
    )
    cache.get(key(2))
    cache.put(key(2), AudioFormat.wav, b"x" * 10, duration_s=0.1)
    cache.get(key(2))
    cache.get(key(2), record=False)
    assert sample("ef_audio_cache_requests_total", result="miss") == misses + 1
    assert sample("ef_audio_cache_requests_total", result="hit") == hits + 1


def test_least_recently_used_entries_are_evicted_at_the_cap(cache: AudioCache) -> None:
    evictions = sample("ef_audio_cache_evictions_total")
    for n in range(4):  # 4 x 3000 bytes: the fourth passes the 10000-byte cap
        cache.put(key(n), AudioFormat.wav, bytes(3000), duration_s=1.0)
        if n == 2:
            time.sleep(0.002)
            assert cache.get(key(0)) is not None  # entry 0 is now the most recently used
            time.sleep(0.002)
    assert cache.get(key(1), record=False) is None  # the least recently used went first
    for n in (0, 2, 3):
        assert cache.get(key(n), record=False) is not None, n
    assert not cache.path_for(key(1), AudioFormat.wav).exists()
    stats = cache.stats()
    assert stats["entries"] == 3 and stats["size_bytes"] == 9000 and stats["max_bytes"] == 10_000
    assert stats["evictions"] == 1
    assert sample("ef_audio_cache_evictions_total") == evictions + 1


def test_eviction_goes_down_to_the_low_water_mark(tmp_path: Path, sessions: SessionFactory) -> None:
    """Past the cap the cache is trimmed to the low-water mark, not just under the cap: the next
    writes then evict nothing, and a full cache is not trimmed at every write."""
    cache = AudioCache(tmp_path / "lw", sessions, max_bytes=10_000, low_water_ratio=0.5)
    for n in range(3):  # 9000 bytes: under the cap, nothing evicted
        cache.put(key(30 + n), AudioFormat.wav, bytes(3000), duration_s=1.0)
        time.sleep(0.002)
    assert cache.stats()["evictions"] == 0
    cache.put(key(33), AudioFormat.wav, bytes(3000), duration_s=1.0)  # 12000: past the cap
    stats = cache.stats()
    assert stats["size_bytes"] == 3000 and stats["entries"] == 1  # down to <= 5000 bytes
    assert stats["evictions"] == 3
    assert cache.get(key(33), record=False) is not None  # the newest stays
    cache.put(key(34), AudioFormat.wav, bytes(1000), duration_s=1.0)
    assert cache.stats()["evictions"] == 3  # under the cap again: no eviction


def test_an_entry_larger_than_the_cap_survives_until_the_next_write(cache: AudioCache) -> None:
    cache.put(key(10), AudioFormat.wav, bytes(4000), duration_s=1.0)
    cache.put(key(11), AudioFormat.wav, bytes(12_000), duration_s=3.0)
    assert cache.get(key(11), record=False) is not None  # the answer being stored is kept
    assert cache.get(key(10), record=False) is None
    cache.put(key(12), AudioFormat.wav, bytes(100), duration_s=0.1)
    assert cache.get(key(11), record=False) is None
    assert cache.stats()["size_bytes"] == 100


def test_a_failed_write_leaves_no_file_and_no_entry(
    cache: AudioCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    k = key(20)
    cache.put(k, AudioFormat.wav, b"old audio", duration_s=1.0)

    def crash(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        cache.put(k, AudioFormat.wav, b"new audio that never lands", duration_s=2.0)
    with pytest.raises(OSError, match="No space"):
        cache.put(key(21), AudioFormat.wav, b"other", duration_s=2.0)
    monkeypatch.undo()
    hit = cache.get(k)
    assert hit is not None and hit.data == b"old audio" and hit.duration_s == 1.0
    assert cache.get(key(21)) is None
    leftovers = [p.name for p in cache.root.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert leftovers == []


def test_a_missing_file_is_a_miss_and_drops_its_entry(
    cache: AudioCache, sessions: SessionFactory
) -> None:
    k = key(30)
    cache.put(k, AudioFormat.flac, b"fLaC....", duration_s=0.5)
    cache.path_for(k, AudioFormat.flac).unlink()
    assert cache.get(k) is None
    with sessions() as session:
        assert session.get(CacheEntry, k) is None


def test_hits_are_recorded_and_purge_removes_everything(cache: AudioCache) -> None:
    for n in range(3):
        cache.put(key(40 + n), AudioFormat.opus, b"OggS" + bytes(100), duration_s=1.0)
    cache.get(key(40))
    cache.get(key(40))
    assert cache.stats()["hits"] == 2
    assert cache.purge() == 3
    assert cache.stats() == {
        "entries": 0,
        "size_bytes": 0,
        "max_bytes": 10_000,
        "hits": 0,
        "evictions": 0,
    }
    assert not [p for p in cache.root.rglob("*") if p.is_file()]


def test_stale_temporary_files_are_swept(cache: AudioCache) -> None:
    shard = cache.root / "ab" / "cd"
    shard.mkdir(parents=True)
    stale, fresh = shard / ".tmp-old.part", shard / ".tmp-new.part"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    old = time.time() - 7200
    os.utime(stale, (old, old))
    assert cache.sweep_temp_files() == 1
    assert not stale.exists() and fresh.exists()


def test_writable(cache: AudioCache) -> None:
    assert cache.writable() == (True, None)
    before = cache.root.stat().st_mtime_ns
    cache.writable()
    assert cache.root.stat().st_mtime_ns == before  # a probe creates no file
    cache.root.rmdir()
    cache.root.write_bytes(b"a file where the cache directory should be")
    assert cache.writable() == (False, "the audio cache is not a directory")


def test_a_known_hit_reads_and_writes_no_database_until_the_flush(
    cache: AudioCache, migrated: Engine
) -> None:
    """The fast path: a hit is memory and one stat; recency and hits go out in one batch."""
    k = key(50)
    cache.put(k, AudioFormat.wav, b"RIFF" + bytes(60), duration_s=0.2)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(migrated, "before_cursor_execute", seen)
    try:
        for _ in range(5):
            hit = cache.get(k)
            assert hit is not None and hit.path == cache.path_for(k, AudioFormat.wav)
            assert hit.size_bytes == 64 and hit.stat.st_size == 64
        assert statements == []
        assert cache.flush() == 1
        assert statements == ["UPDATE"]
    finally:
        event.remove(migrated, "before_cursor_execute", seen)
    assert cache.stats()["hits"] == 5
    assert cache.flush() == 0  # nothing new since


def test_a_crash_loses_only_recency_and_hit_counts(
    tmp_path: Path, sessions: SessionFactory
) -> None:
    """A cache never flushed nor closed (the process was killed) leaves every entry intact."""
    crashed = AudioCache(tmp_path / "audio-cache", sessions, max_bytes=10_000)
    crashed.put(key(60), AudioFormat.mp3, b"ID3 kept", duration_s=1.0)
    assert crashed.get(key(60)) is not None
    del crashed
    restarted = AudioCache(tmp_path / "audio-cache", sessions, max_bytes=10_000)
    hit = restarted.get(key(60))
    assert hit is not None and hit.data == b"ID3 kept"
    assert restarted.stats()["hits"] == 1  # the restarted process's own hit; the first is lost


def test_the_flusher_thread_writes_in_the_background_and_at_close(
    tmp_path: Path, sessions: SessionFactory
) -> None:
    cache = AudioCache(tmp_path / "audio-cache", sessions, max_bytes=10_000)
    cache.put(key(70), AudioFormat.wav, b"RIFF", duration_s=0.1)
    cache.start(interval_s=0.05)
    cache.get(key(70))
    deadline = time.monotonic() + 5
    while _hits_in_db(sessions, key(70)) != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _hits_in_db(sessions, key(70)) == 1
    cache.get(key(70))
    cache.close()
    assert _hits_in_db(sessions, key(70)) == 2


def test_an_entry_another_process_evicted_is_a_miss_here(
    cache: AudioCache, tmp_path: Path, sessions: SessionFactory
) -> None:
    other = AudioCache(tmp_path / "audio-cache", sessions, max_bytes=10_000)
    k = key(80)
    other.put(k, AudioFormat.wav, b"RIFF from the other process", duration_s=0.3)
    hit = cache.get(k)  # unknown here: read from the database, then known
    assert hit is not None and hit.data == b"RIFF from the other process"
    assert other.purge() == 1
    assert cache.get_known(k) is None
    assert cache.get(k) is None
    assert cache.read(k) is None


def _hits_in_db(sessions: SessionFactory, k: str) -> int:
    with sessions() as session:
        entry = session.get(CacheEntry, k)
        return -1 if entry is None else entry.hits


def test_purge_deletes_the_file_before_the_row(cache: AudioCache) -> None:
    """A file that cannot be deleted keeps its row (still counted against the cap); the purge
    says so with a storage error. (The shard directory replaced by a file stands in for a
    read-only cache: root ignores permission bits.)"""
    for n in range(4):
        cache.put(key(n), AudioFormat.wav, b"x" * 100, duration_s=0.1)
    stuck = cache.path_for(key(3), AudioFormat.wav)
    aside = stuck.parent.with_name(stuck.parent.name + ".aside")
    stuck.parent.rename(aside)
    stuck.parent.write_text("not a directory")
    try:
        with pytest.raises(StorageError, match="Cannot delete cached audio") as refused:
            cache.purge()
        assert refused.value.status_code == 507
        assert cache.stats()["entries"] >= 1
        assert cache.entry(key(3)) is None  # its file is unreachable, but the row is kept
        assert cache.total_bytes() >= 100
    finally:
        stuck.parent.unlink()
        aside.rename(stuck.parent)
    assert cache.purge() >= 1
    assert cache.stats()["entries"] == 0
    assert not list(cache.root.glob("*/*/*.wav"))


def test_orphan_files_are_swept(cache: AudioCache, sessions: SessionFactory) -> None:
    cache.put(key(1), AudioFormat.wav, b"kept", duration_s=0.1)
    orphan = cache.path_for(key(2), AudioFormat.wav)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left behind")
    young = cache.path_for(key(3), AudioFormat.wav)
    young.parent.mkdir(parents=True, exist_ok=True)
    young.write_bytes(b"another process is about to insert its row")
    old = time.time() - 3600
    for path in (orphan, cache.path_for(key(1), AudioFormat.wav)):
        os.utime(path, (old, old))
    assert cache.sweep_orphans(older_than_s=600) == 1
    assert not orphan.exists()
    assert young.exists() and cache.get(key(1)) is not None
