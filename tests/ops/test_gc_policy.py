"""The serving process's garbage-collector policy: the start-up heap frozen, the young threshold raised, and
nothing collectable frozen with it. Run in a child interpreter, so the test process keeps CPython's defaults.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json, weakref
from delivery_gateway.ops.gc_policy import GEN0_THRESHOLD, apply_serving_gc_policy
import delivery_gateway.app  # what serve imports before start-up ends
class Cycle:
    pass
a, b = Cycle(), Cycle()
a.other, b.other = b, a
garbage = weakref.ref(a)
del a, b  # start-up garbage: collected, not frozen
before = gc.get_threshold()
previous = apply_serving_gc_policy()
print(json.dumps({"before": before, "previous": previous, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "gen0": GEN0_THRESHOLD, "collected": garbage() is None}))
"""


def test_serving_policy_freezes_the_start_up_heap_and_raises_the_young_threshold():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    result = json.loads(out.stdout)
    assert result["previous"] == result["before"]
    assert result["after"] == [result["gen0"], result["before"][1], result["before"][2]]
    assert result["frozen"] > 10_000  # the imported gateway, not a handful of objects
    assert result["collected"]  # start-up's garbage went before the freeze
