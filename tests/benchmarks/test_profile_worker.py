"""The event-loop thread's inclusive shares from py-spy's collapsed stacks."""

from __future__ import annotations

from benchmarks.profile_worker import loop_inclusive

RAW = "\n".join(
    [
        # The loop thread working: a request inside the app, twice through the same function.
        "main (m.py:1);Runner.run (asyncio/runners.py:118);run_asgi (h.py:10);f (a.py:3);f (a.py:4) 6",
        "main (m.py:1);Runner.run (asyncio/runners.py:118);run_asgi (h.py:10);flush (p.py:40) 2",
        # The loop waiting in epoll, and another thread: neither is the loop's work.
        "main (m.py:1);Runner.run (asyncio/runners.py:118) 30",
        "_bootstrap (threading.py:1);_worker (concurrent/futures/thread.py:81) 50",
    ]
)


def test_loop_inclusive_counts_each_function_once_per_sample_and_skips_waits_and_other_threads() -> None:
    total, rows = loop_inclusive(RAW, 10)
    assert total == 8
    shares = {frame: pct for pct, frame in rows}
    assert shares == {"run_asgi (h.py)": 100.0, "f (a.py)": 75.0, "flush (p.py)": 25.0}
