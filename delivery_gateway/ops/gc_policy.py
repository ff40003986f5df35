"""The garbage collector's policy for a serving process, applied once start-up is done.

A request allocates tens of thousands of short-lived objects (parsed cache entries, records, GraphQL types, the
executor's bookkeeping), nearly all freed by reference counting; with CPython's default thresholds (700, 10, 10)
that triggers a few young collections per request and, now and then, a full collection that walks every object
the process holds (the imported libraries, the schema) for tens of milliseconds. BENCHMARKS.md, row 2, measured
both. So, after start-up: collect what start-up left behind, freeze the survivors (they live as long as the
process; the collector stops walking them), and raise the young generation's threshold.

Never applied to a process that is not a server (tests and tools keep CPython's defaults): a frozen heap is never
collected, which suits a server's start-up objects and nothing else.
"""

from __future__ import annotations

import gc

# Objects allocated (net of deallocations) before a young collection: large enough that a chat-screen request
# (a few thousand surviving allocations at a time) rarely triggers one, small enough to keep cycles short-lived.
GEN0_THRESHOLD = 50_000


def apply_serving_gc_policy() -> tuple[int, int, int]:
    """Collect, freeze the start-up heap, raise the young threshold; returns the previous thresholds."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, previous[1], previous[2])
    return previous
