"""The audio cache: content-addressed files under a size cap, metadata in the database.

A file's path comes from its key alone (``audio-cache/ab/cd/<key>.<ext>``, key = sha256 hex), so
no user input ever reaches the file system. Files are written to a temporary name and renamed,
so a reader never sees half a file. When the total passes ``EF_CACHE_MAX_BYTES`` the least
recently used entries are evicted down to a low-water mark (``EF_CACHE_LOW_WATER_RATIO`` of the
cap), so that a full cache is not trimmed again at every write and sits below its cap. Several
processes may share one cache: the database is the truth, a missing file is a miss, and deleting
what another process already deleted is harmless.

A hit is the path users take most, so it touches neither the database nor the file's bytes:
the entries this process has seen are kept in memory (a ``stat`` confirms the file is still
there), the file is sent from disk by the response, and the hit's recency and count are added
up in memory and written in one batch every `FLUSH_INTERVAL_S` (and before every eviction, and
at shutdown). A crash loses only the recency and hit counts of that last interval.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import bindparam, delete, func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from ef_backend.core.db import SessionFactory
from ef_backend.core.errors import StorageError
from ef_backend.models import AudioFormat, CacheEntry, utcnow
from ef_backend.observability import metrics

log = logging.getLogger(__name__)

__all__ = ["AudioCache", "CachedAudio", "cache_key", "relative_path"]

_KEY = re.compile(r"^[0-9a-f]{64}$")
_EXTENSIONS: dict[AudioFormat, str] = {
    AudioFormat.wav: "wav",
    AudioFormat.mp3: "mp3",
    AudioFormat.opus: "ogg",
    AudioFormat.flac: "flac",
    AudioFormat.aac: "aac",
    AudioFormat.pcm: "pcm",
}
_EVICT_BATCH = 64
_FILE_MODE = 0o640
#: How often the recency and hit counts gathered in memory are written to the database.
FLUSH_INTERVAL_S = 5.0


def cache_key(
    engine: str,
    model: str,
    voice: str,
    speed: float,
    format: AudioFormat | str,
    text: str,
    *,
    scope: str = "",
) -> str:
    """sha256 hex of everything that changes the audio; ``text`` must be normalised already.

    ``scope`` (an API key's name under EF_CACHE_SCOPE=key) keeps one key's entries apart from
    another's; empty, the key is the shared one (and the same as before scopes existed).
    """
    fmt = format.value if isinstance(format, AudioFormat) else format
    fields = [engine, model, voice, f"{speed:.3f}", fmt, text, *([scope] if scope else [])]
    payload = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def relative_path(key: str, format: AudioFormat) -> str:
    """The file of ``key`` relative to the cache root; refuses anything but a sha256 hex key."""
    if not _KEY.match(key):
        raise ValueError("cache keys are sha256 hex digests")
    return f"{key[:2]}/{key[2:4]}/{key}.{_EXTENSIONS[format]}"


@dataclass(frozen=True)
class _Meta:
    """What this process knows of an entry without asking the database."""

    format: AudioFormat
    duration_s: float


@dataclass(frozen=True)
class CachedAudio:
    """One cache hit: the file to send (``stat`` taken at the lookup) and its metadata."""

    key: str
    format: AudioFormat
    path: Path
    stat: os.stat_result
    duration_s: float

    @property
    def size_bytes(self) -> int:
        return self.stat.st_size

    @property
    def data(self) -> bytes:
        """The whole file; for small internal reads only (responses stream ``path``)."""
        return self.path.read_bytes()


class AudioCache:
    """Content-addressed audio files with LRU eviction under ``max_bytes``."""

    def __init__(
        self, root: Path, sessions: SessionFactory, *, max_bytes: int, low_water_ratio: float = 0.9
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        #: Where eviction stops once the total passed the cap.
        self.low_water_bytes = int(max_bytes * low_water_ratio)
        self._sessions = sessions
        self._evictions = 0
        self._lock = threading.Lock()  # one evictor per process at a time
        self._index: dict[str, _Meta] = {}
        # key -> (last used, hits since the last flush); swapped out whole under _pending_lock.
        self._pending: dict[str, tuple[datetime, int]] = {}
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        # Group-readable (0750 like the files' 0640): ef_proxy sends cached files itself.
        self.root.mkdir(mode=0o750, parents=True, exist_ok=True)

    def start(self, interval_s: float = FLUSH_INTERVAL_S) -> None:
        """Write the gathered recency and hit counts every ``interval_s`` in a thread."""
        if self._flusher is not None:
            return
        self._stop.clear()
        self._flusher = threading.Thread(
            target=self._flush_loop, args=(interval_s,), name="ef-cache-flush", daemon=True
        )
        self._flusher.start()

    def close(self) -> None:
        """Stop the flusher and write what it has not written yet."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
            self._flusher = None
        self.flush()

    def _flush_loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.flush()
            except Exception:
                log.exception("writing cache recency failed; kept for the next try")

    def flush(self) -> int:
        """Write the recency and hit counts gathered since the last flush; returns how many."""
        with self._flush_lock:
            with self._pending_lock:
                pending, self._pending = self._pending, {}
            if not pending:
                return 0
            rows = [{"k": k, "t": used, "n": n} for k, (used, n) in pending.items()]
            statement = (
                update(CacheEntry)
                .where(col(CacheEntry.key) == bindparam("k"))
                .values(last_used_at=bindparam("t"), hits=CacheEntry.hits + bindparam("n"))
            )
            try:
                with self._sessions() as session:
                    session.connection().execute(statement, rows)
                    session.commit()
            except Exception:
                self._merge_back(pending)
                raise
            return len(rows)

    def _merge_back(self, pending: dict[str, tuple[datetime, int]]) -> None:
        with self._pending_lock:
            for key, (used, hits) in pending.items():
                newer, more = self._pending.get(key, (used, 0))
                self._pending[key] = (max(used, newer), hits + more)

    def _touch(self, key: str) -> None:
        now = utcnow()
        with self._pending_lock:
            hits = self._pending.get(key, (now, 0))[1]
            self._pending[key] = (now, hits + 1)

    def path_for(self, key: str, format: AudioFormat) -> Path:
        """Where the file of ``key`` lives; refuses anything that is not a sha256 hex key."""
        return self.root / relative_path(key, format)

    def get(self, key: str, *, record: bool = True) -> CachedAudio | None:
        """The audio under ``key``, or None. ``record`` counts the lookup in the hit/miss metric.

        Request-level lookups are recorded; the per-sentence lookups of the workers are not,
        so the hit ratio means "requests answered from the cache". An entry this process has
        not seen yet is read from the database (blocking: call it from a thread).
        """
        result = self.get_known(key, record=False)
        if result is None:
            result = self._load(key)
        if record:
            metrics.audio_cache_requests_total.labels("hit" if result else "miss").inc()
        return result

    def get_known(self, key: str, *, record: bool = True) -> CachedAudio | None:
        """The audio under ``key`` if this process knows the entry: memory and one ``stat``,
        no database, so it may run on the event loop. None means "ask `get`", not a miss."""
        meta = self._index.get(key)
        if meta is None:
            return None
        path = self.path_for(key, meta.format)
        try:
            stat = os.stat(path)
        except FileNotFoundError:  # evicted by another process; `get` sorts the entry out
            self._index.pop(key, None)
            return None
        self._touch(key)
        if record:
            metrics.audio_cache_requests_total.labels("hit").inc()
        return CachedAudio(key, meta.format, path, stat, meta.duration_s)

    def _load(self, key: str) -> CachedAudio | None:
        with self._sessions() as session:
            entry = session.get(CacheEntry, key)
            if entry is None:
                return None
            path = self.path_for(key, entry.format)
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                log.warning("cache file missing; dropping its entry", extra={"cache_key": key})
                session.delete(entry)
                session.commit()
                return None
        self._index[key] = _Meta(entry.format, entry.duration_s)
        self._touch(key)
        return CachedAudio(key, entry.format, path, stat, entry.duration_s)

    def read(self, key: str) -> bytes | None:
        """The bytes under ``key`` (a sentence for the workers or a stream), None if gone."""
        hit = self.get(key, record=False)
        if hit is None:
            return None
        try:
            return hit.path.read_bytes()
        except FileNotFoundError:
            self._index.pop(key, None)
            return None

    def entry(self, key: str) -> CacheEntry | None:
        """The metadata of ``key`` if its file is there (recency untouched, nothing read)."""
        with self._sessions() as session:
            entry = session.get(CacheEntry, key)
        if entry is None or not self.path_for(key, entry.format).exists():
            return None
        return entry

    def put(self, key: str, format: AudioFormat, data: bytes, *, duration_s: float) -> None:
        """Store ``data`` under ``key`` atomically, then evict down to the cap (never ``key``)."""
        path = self.path_for(key, format)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
        try:
            # Group-readable: ef_proxy reads cached audio (X-Accel-Redirect) with the group only.
            os.fchmod(fd, _FILE_MODE)
            with os.fdopen(fd, "wb") as tmp:
                tmp.write(data)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        self._upsert(key, format, len(data), duration_s)
        self._index[key] = _Meta(format, duration_s)
        self.evict(keep=key)

    def _upsert(self, key: str, format: AudioFormat, size: int, duration_s: float) -> None:
        now = utcnow()
        with self._sessions() as session:
            entry = session.get(CacheEntry, key)
            if entry is not None:
                entry.format, entry.size_bytes, entry.duration_s = format, size, duration_s
                entry.last_used_at = now
                session.add(entry)
                session.commit()
                return
            session.add(
                CacheEntry(
                    key=key,
                    format=format,
                    size_bytes=size,
                    duration_s=duration_s,
                    created_at=now,
                    last_used_at=now,
                )
            )
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another process stored the same key: same content

    def total_bytes(self) -> int:
        with self._sessions() as session:
            return int(
                session.exec(select(func.coalesce(func.sum(CacheEntry.size_bytes), 0))).one()
            )

    def evict(self, *, keep: str | None = None) -> int:
        """Past the cap, remove least recently used entries down to the low-water mark; returns
        how many."""
        removed = 0
        with self._lock:
            if self.total_bytes() <= self.max_bytes:
                return 0
            self.flush()  # eviction order comes from the database: bring recency up to date
            while True:
                total = self.total_bytes()
                if total <= self.low_water_bytes:
                    break
                victims = self._oldest(exclude=keep)
                if not victims:
                    break
                for entry in victims:
                    if total <= self.low_water_bytes:
                        break
                    try:
                        removed += self._remove(entry)
                    except OSError as exc:
                        log.error("cache eviction failed", extra={"error": str(exc)})
                        victims = []
                        break
                    total -= entry.size_bytes
                if not victims:
                    break
        if removed:
            self._evictions += removed
            metrics.audio_cache_evictions_total.inc(removed)
            log.info("cache evicted entries", extra={"evicted": removed})
        return removed

    def _oldest(self, *, exclude: str | None) -> list[CacheEntry]:
        with self._sessions() as session:
            query = select(CacheEntry).order_by(col(CacheEntry.last_used_at)).limit(_EVICT_BATCH)
            if exclude is not None:
                query = query.where(col(CacheEntry.key) != exclude)
            return list(session.exec(query).all())

    def _remove(self, entry: CacheEntry) -> bool:
        """Delete one entry's file, then its row; False if another process got there first.

        The file goes first: if it cannot be deleted (a read-only cache) the row stays, so the
        file is still counted against the cap and nothing is left behind uncounted.
        """
        self._index.pop(entry.key, None)
        with contextlib.suppress(FileNotFoundError):
            self.path_for(entry.key, entry.format).unlink()
        with self._sessions() as session:
            result = session.execute(delete(CacheEntry).where(col(CacheEntry.key) == entry.key))
            session.commit()
        return bool(getattr(result, "rowcount", 0))

    def purge(self) -> int:
        """Remove every entry and file; returns the number of entries removed.

        Raises `StorageError` when a file cannot be deleted; entries already removed stay
        removed, the others keep their rows.
        """
        removed = 0
        while True:
            batch = self._oldest(exclude=None)
            if not batch:
                break
            for entry in batch:
                try:
                    removed += self._remove(entry)
                except OSError as exc:
                    log.error("cache purge stopped", extra={"removed": removed, "error": str(exc)})
                    raise StorageError(
                        f"Cannot delete cached audio ({exc.strerror or exc}); {removed} entries "
                        "were removed, the rest are kept. Is the audio cache read-only?",
                        removed=removed,
                    ) from exc
        log.info("cache purged", extra={"removed": removed})
        return removed

    def stats(self, *, flush: bool = True) -> dict[str, int]:
        """Entries, bytes, cap, hits and evictions: two aggregates, no directory walk.

        ``flush=False`` leaves the pending recency to the flusher: the hits are then those
        written so far, the other figures are the same (a scrape needs no hits, and no write).
        """
        if flush:
            self.flush()
        with self._sessions() as session:
            entries, size, hits = session.exec(
                select(
                    func.count(),
                    func.coalesce(func.sum(CacheEntry.size_bytes), 0),
                    func.coalesce(func.sum(CacheEntry.hits), 0),
                ).select_from(CacheEntry)
            ).one()
        return {
            "entries": int(entries),
            "size_bytes": int(size),
            "max_bytes": self.max_bytes,
            "hits": int(hits),
            "evictions": self._evictions,
        }

    def sweep_temp_files(self, *, older_than_s: float = 3600.0) -> int:
        """Delete temporary files a crashed writer left behind; returns how many."""
        removed = 0
        cutoff = time.time() - older_than_s
        for path in self.root.glob("*/*/.tmp-*.part"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def sweep_orphans(self, *, older_than_s: float = 600.0) -> int:
        """Delete audio files that have no database row (left by an older version's deletion
        order or a crash between write and insert); returns how many. Files younger than
        ``older_than_s`` are left alone: another process may be about to insert their row."""
        cutoff = time.time() - older_than_s
        files: dict[str, Path] = {}
        for path in self.root.glob("*/*/*"):
            key = path.name.partition(".")[0]
            if _KEY.match(key):
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < cutoff:
                        files[key] = path
        keys = list(files)
        known: set[str] = set()
        with self._sessions() as session:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                known.update(
                    session.exec(select(CacheEntry.key).where(col(CacheEntry.key).in_(chunk)))
                )
        removed = 0
        for key in keys:
            if key not in known:
                with contextlib.suppress(FileNotFoundError):
                    files[key].unlink()
                    removed += 1
        if removed:
            log.warning("removed cache files without an entry", extra={"removed": removed})
        return removed

    def writable(self) -> tuple[bool, str | None]:
        """Is the cache a directory this process may write? Asked of the kernel (``access``
        also says no on a read-only mount), without creating anything: health probes are
        called often and must stay cheap."""
        if not self.root.is_dir():
            return False, "the audio cache is not a directory"
        if not os.access(self.root, os.W_OK | os.X_OK):
            return False, "the audio cache is not writable (read-only or permissions)"
        return True, None
