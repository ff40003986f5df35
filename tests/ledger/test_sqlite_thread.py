"""The SQLite ledger's thread: write operations waiting together share one transaction and one commit, yet each
succeeds or fails alone; reads run in autocommit mode; the kept connection survives a failed operation."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import event, text

from delivery_gateway.ledger.sqlite_thread import SqliteThread
from delivery_gateway.ledger.store import parse_store_url


@pytest.fixture
async def thread(tmp_path):
    sqlite = SqliteThread(parse_store_url(f"sqlite:///{tmp_path}/t.sqlite3"))
    await sqlite.run(lambda conn: conn.exec_driver_sql("CREATE TABLE t (v INTEGER UNIQUE)"), write=True)
    yield sqlite
    await sqlite.close()


def _insert(value: int):
    def insert(conn) -> int:
        conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": value})
        return value

    return insert


async def _values(thread: SqliteThread) -> list[int]:
    return await thread.run(lambda conn: [r.v for r in conn.execute(text("SELECT v FROM t ORDER BY v"))])


async def test_waiting_writes_share_one_commit(thread):
    commits = []
    event.listen(thread.engine, "commit", lambda conn: commits.append(1))
    blocker = threading.Event()

    def hold(conn) -> None:  # keeps the thread busy while the next writes queue up behind it
        assert blocker.wait(5)

    first = asyncio.ensure_future(thread.run(hold, write=True))
    await asyncio.sleep(0.05)
    queued = [asyncio.ensure_future(thread.run(_insert(v), write=True)) for v in (1, 2, 3)]
    await asyncio.sleep(0.01)
    blocker.set()
    await first
    assert await asyncio.gather(*queued) == [1, 2, 3]
    assert len(commits) == 2  # the holder's, then one for the three that waited
    assert await _values(thread) == [1, 2, 3]


async def test_a_failing_write_fails_alone(thread):
    await thread.run(_insert(7), write=True)
    blocker = threading.Event()

    def hold(conn) -> None:
        assert blocker.wait(5)

    first = asyncio.ensure_future(thread.run(hold, write=True))
    await asyncio.sleep(0.05)
    attempts = []

    def duplicate(conn) -> None:  # UNIQUE: fails
        attempts.append(1)
        _insert(7)(conn)

    good = asyncio.ensure_future(thread.run(_insert(1), write=True))
    bad = asyncio.ensure_future(thread.run(duplicate, write=True))
    later = asyncio.ensure_future(thread.run(_insert(2), write=True))
    await asyncio.sleep(0.01)
    blocker.set()
    await first
    assert await good == 1
    with pytest.raises(Exception, match="UNIQUE"):
        await bad
    assert await later == 2
    assert attempts == [1]  # the failing one is not run again: it fails as it would have alone
    assert await _values(thread) == [1, 2, 7]
    # the kept connection still works, for reads and writes
    assert await thread.run(_insert(3), write=True) == 3
    assert await _values(thread) == [1, 2, 3, 7]


async def test_a_failing_read_leaves_the_connection_usable(thread):
    with pytest.raises(Exception, match="no such table"):
        await thread.run(lambda conn: conn.execute(text("SELECT * FROM missing")).all())
    assert await thread.run(_insert(5), write=True) == 5
    assert await _values(thread) == [5]
