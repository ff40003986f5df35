"""What one GraphQL execution read, for the response cache: the conversations and messages behind its answer, and
the moment the first resource it was built from expires.

The response cache opens a `ReadSet` in a context variable around one execution; the resource cache notes every key
it is asked for (and how long that entry still lives). Never holds data, only SIDs and a deadline; costs one
context-variable read outside a recorded execution.
"""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field

# Dependency names the response cache indexes entries by (and invalidations name).
CONVERSATION_DEP = "c:"
MESSAGE_DEP = "m:"


def conversation_dep(conversation_sid: str) -> str:
    """Every entry that read anything of the conversation (the conversation, its participants, its messages)."""
    return CONVERSATION_DEP + conversation_sid


def message_dep(message_sid: str) -> str:
    """Every entry that read the message (its record, delivery summary, receipts or receipt history)."""
    return MESSAGE_DEP + message_sid


@dataclass(slots=True)
class ReadSet:
    """The dependencies of one execution. `expires` is wall-clock time (entries are shared between replicas)."""

    deps: set[str] = field(default_factory=set)
    expires: float = float("inf")
    unattributed: bool = False  # something was read that names no conversation: the answer is not cacheable

    def note(self, conversation_sid: str | None, message_sid: str | None, remaining: float | None) -> None:
        if conversation_sid:
            self.deps.add(CONVERSATION_DEP + conversation_sid)
        if message_sid:
            self.deps.add(MESSAGE_DEP + message_sid)
        if remaining is not None:
            deadline = time.time() + max(0.0, remaining)
            if deadline < self.expires:
                self.expires = deadline

    @property
    def conversations(self) -> list[str]:
        return sorted(dep[len(CONVERSATION_DEP) :] for dep in self.deps if dep.startswith(CONVERSATION_DEP))


_current: contextvars.ContextVar[ReadSet | None] = contextvars.ContextVar("read_set", default=None)


def begin() -> tuple[ReadSet, contextvars.Token[ReadSet | None]]:
    """Record what the execution this task runs (and the tasks it starts) reads; `end(token)` when done."""
    reads = ReadSet()
    return reads, _current.set(reads)


def end(token: contextvars.Token[ReadSet | None]) -> None:
    _current.reset(token)


def current() -> ReadSet | None:
    return _current.get()
