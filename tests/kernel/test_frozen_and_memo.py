"""Read-only JSON values (kernel/frozen.py) and the identity memo (kernel/memo.py) that the in-process cache and the
GraphQL layer share immutable records with.

Pure: no I/O.
"""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from delivery_gateway.kernel.frozen import FrozenDict, FrozenList, freeze
from delivery_gateway.kernel.memo import IdentityMemo


def test_frozen_values_refuse_every_change_and_still_read_as_json():
    value = freeze({"a": [1, {"b": 2}], "c": (3, 4)})
    assert isinstance(value, FrozenDict) and isinstance(value["a"], FrozenList) and isinstance(value["a"][1], dict)
    assert value == {"a": [1, {"b": 2}], "c": [3, 4]}  # equal to the plain JSON value (a tuple reads as a list)
    assert json.loads(json.dumps(value)) == value
    for change in (
        lambda: value.__setitem__("x", 1),
        lambda: value.pop("a"),
        lambda: value.update(x=1),
        lambda: value.setdefault("x", 1),
        lambda: value.clear(),
        lambda: value["a"].append(5),
        lambda: value["a"].extend([5]),
        lambda: value["a"].__setitem__(0, 9),
        lambda: value["a"].sort(),
        lambda: value["a"][1].__setitem__("b", 3),
    ):
        with pytest.raises(TypeError):
            change()
    with pytest.raises(TypeError):
        value["a"] += [5]
    with pytest.raises(TypeError):
        del value["c"]
    assert value == {"a": [1, {"b": 2}], "c": [3, 4]}
    plain = dict(value)
    plain["x"] = 1  # a copy is an ordinary, mutable dict
    assert "x" not in value
    assert copy.deepcopy(value) == value and pickle.loads(pickle.dumps(value)) == value
    assert freeze(value) is value


def test_identity_memo_keys_by_identity_never_by_equality_and_stays_bounded():
    memo: IdentityMemo[str] = IdentityMemo(2)
    a, b = [1], [1]  # equal, not the same
    memo.put("scope", (a,), "from a")
    assert memo.get("scope", a) == "from a"
    assert memo.get("scope", b) is None  # an equal object read at another time is another entry
    assert memo.get("other", a) is None  # the label is part of the key
    memo.put("scope", (b,), "from b")
    c = [2]
    memo.put("scope", (c,), "from c")  # full: the oldest entry goes
    assert len(memo) == 2 and memo.get("scope", a) is None and memo.get("scope", c) == "from c"
