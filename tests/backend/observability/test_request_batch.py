"""Work after the response: processed once per event-loop turn, in order, and never lost."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from ef_common.request_batch import LoopBatch, flush_pending


async def test_items_wait_for_the_turn_and_come_in_one_call_in_order() -> None:
    batches: list[list[int]] = []
    batch = LoopBatch(batches.append)
    for number in range(5):
        batch.add(number)
    assert batches == [], "nothing may be processed on the request path"
    await asyncio.sleep(0)  # the event loop's turn
    assert batches == [[0, 1, 2, 3, 4]]
    batch.add(5)
    batch.add(6)
    await asyncio.sleep(0)
    assert batches == [[0, 1, 2, 3, 4], [5, 6]]


def test_outside_an_event_loop_an_item_is_processed_at_once() -> None:
    batches: list[list[str]] = []
    LoopBatch(batches.append).add("sync caller")
    assert batches == [["sync caller"]]


def test_a_loop_that_stops_before_its_turn_loses_nothing() -> None:
    """A test client's short-lived loop may end before its turn: the next request flushes."""
    batches: list[list[int]] = []
    batch = LoopBatch(batches.append)
    first = asyncio.new_event_loop()

    async def add_and_stop() -> None:
        batch.add(1)
        first.stop()  # the loop ends with this iteration: the scheduled flush never runs

    task = first.create_task(add_and_stop())
    first.run_forever()
    assert task.done()
    first.close()
    assert batches == []
    second = asyncio.new_event_loop()

    async def add_and_yield() -> None:
        batch.add(2)
        await asyncio.sleep(0)

    second.run_until_complete(add_and_yield())
    second.close()
    assert batches == [[1, 2]]


def test_a_stopped_loop_that_is_not_closed_holds_nothing_back() -> None:
    """Its flush is still pending: items of a later loop in the same thread do not wait for
    it, and a synchronous caller processes everything at once."""
    batches: list[list[int]] = []
    batch = LoopBatch(batches.append)
    first = asyncio.new_event_loop()

    async def add_and_stop() -> None:
        batch.add(1)
        first.stop()

    task = first.create_task(add_and_stop())
    first.run_forever()  # stopped, not closed: its scheduled flush stays queued
    assert task.done() and not first.is_closed()
    second = asyncio.new_event_loop()

    async def add_and_yield(number: int) -> None:
        batch.add(number)
        await asyncio.sleep(0)

    second.run_until_complete(add_and_yield(2))
    assert batches == [[1, 2]]
    batch.add(3)  # no loop running now
    assert batches == [[1, 2], [3]]
    second.run_until_complete(add_and_yield(4))
    assert batches == [[1, 2], [3], [4]]
    first.close()
    second.close()


async def test_a_flush_pending_on_another_threads_loop_does_not_hold_ours() -> None:
    """Two event loops in two threads: each item is flushed after a turn of its own loop,
    even while the other loop (blocked here) has a flush of its own waiting."""
    batches: list[list[str]] = []
    batch = LoopBatch(batches.append)
    added, release = threading.Event(), threading.Event()

    async def add_then_block() -> None:
        batch.add("other thread")
        added.set()
        release.wait(10)  # blocks that loop: its scheduled flush cannot run

    other = threading.Thread(target=asyncio.run, args=(add_then_block(),))
    other.start()
    assert added.wait(10)
    batch.add("this thread")
    await asyncio.sleep(0)
    flushed_here = [list(b) for b in batches]  # before the other loop may run again
    release.set()
    other.join(10)
    assert flushed_here == [["other thread", "this thread"]]
    assert batches == flushed_here, "the other loop's flush finds nothing left"


async def test_a_flush_from_another_thread_takes_each_item_once() -> None:
    """What a scrape does (it runs in a worker thread): pending items, then nothing twice."""
    batches: list[list[int]] = []
    batch = LoopBatch(batches.append)
    for number in range(3):
        batch.add(number)
    scraper = threading.Thread(target=flush_pending)
    scraper.start()
    scraper.join()
    assert batches == [[0, 1, 2]]
    await asyncio.sleep(0)  # the flush scheduled for this turn finds nothing to do
    assert batches == [[0, 1, 2]]


async def test_a_failing_sink_is_logged_and_later_items_still_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[list[int]] = []

    def sink(items: list[int]) -> None:
        if items == [1]:
            raise RuntimeError("sink down")
        seen.append(items)

    batch = LoopBatch(sink)
    with caplog.at_level(logging.ERROR, logger="ef_common.request_batch"):
        batch.add(1)
        await asyncio.sleep(0)
    assert "processing 1 finished requests failed" in caplog.text
    batch.add(2)
    await asyncio.sleep(0)
    assert seen == [[2]]


def test_a_forked_worker_does_not_count_its_parents_requests() -> None:
    """The parent flushes its own pending items; a forked child must start empty."""
    import os

    batches: list[list[int]] = []
    batch = LoopBatch(batches.append)
    batch._items.append(1)  # pending in the parent when the worker is forked
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: flush, report what it processed, exit without cleanup
        batch.flush()
        os.write(write, repr(batches).encode())
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    child_saw = os.read(read, 100).decode()
    os.close(read)
    assert os.WEXITSTATUS(status) == 0
    assert child_saw == "[]"
    batch.flush()
    assert batches == [[1]]
