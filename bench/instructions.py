"""Instruction counts of row 2 (warm execution against plain Strawberry), for valgrind's callgrind.

`python -m bench.instructions SIDE N` sets row 2 up exactly as `bench.execution` does (emulator, in-process gateway
with a warm cache, serve's GC policy, the plain reference built from the gateway's answer, a few warm-up executions
of both), then runs N executions of SIDE: `gateway`, `plain`, or `none` (setup only). Run under callgrind, the
difference between a side's total and `none`'s is what N executions of that side cost, in instructions, unmoved by
other processes sharing the machine (which is what CPU time is not: see BENCHMARKS.md, row 2):

    valgrind --tool=callgrind --callgrind-out-file=none.out .venv/bin/python -m bench.instructions none 10
    valgrind --tool=callgrind --callgrind-out-file=gateway.out .venv/bin/python -m bench.instructions gateway 10
    valgrind --tool=callgrind --callgrind-out-file=plain.out .venv/bin/python -m bench.instructions plain 10
    grep summary: none.out gateway.out plain.out   # (gateway - none) / 10 and (plain - none) / 10

Each run takes a few minutes (start-up dominates). The emulator runs in a child process that callgrind does not
follow; the gateway's reconciliation is off (its passes depend on wall time). Compile the sources first
(`python -m compileall -q delivery_gateway bench`) so that no run pays for compiling what another did not. Never
talks to anything but the loopback emulator it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc

from bench.chat_screen import CHAT_SCREEN_QUERY, CONVERSATION, OPERATION
from bench.gateway import WARM_TTL, gateway_env, in_process_gateway, serving_gc_policy, settings_from_env
from bench.harness import ServerProcess, emulator_process
from bench.plain_schema import PlainChatScreen

SIDES = ("gateway", "plain", "none")
WARMUP = 5


async def run(side: str, executions: int, emulator: ServerProcess | None = None) -> None:
    """Set row 2 up, then `executions` executions of `side` (none for `none`); `emulator` is started if not given."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, not {side!r}")
    async with emulator_process(emulator) as emulator:
        # Reconciliation off: its passes come every so many seconds of wall time, which callgrind stretches (and a
        # busy machine more), so they would count more often in a longer run.
        extra = {"DELIVERY_GATEWAY_DEMO_MODE": "true", "DELIVERY_GATEWAY_RECONCILE_SECONDS": "0"}
        env = gateway_env(emulator.info, cache_ttls=WARM_TTL, extra=extra)
        sid = emulator.info["conversations"][CONVERSATION]
        async with in_process_gateway(settings_from_env(env)) as gateway, asyncio.timeout(3600):
            with serving_gc_policy():

                async def gateway_once() -> None:
                    result = await gateway.execute(CHAT_SCREEN_QUERY, {"sid": sid}, OPERATION)
                    if result.errors:
                        raise RuntimeError(f"gateway execution failed: {result.errors[0]}")

                first = await gateway.execute(CHAT_SCREEN_QUERY, {"sid": sid}, OPERATION)  # fills the cache
                plain = PlainChatScreen(sid, first.data, CHAT_SCREEN_QUERY, OPERATION)
                for _ in range(WARMUP):
                    await gateway_once()
                    plain.execute()
                gc.collect()
                for _ in range(executions if side != "none" else 0):
                    if side == "gateway":
                        await gateway_once()
                    else:
                        plain.execute()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("side", choices=SIDES)
    parser.add_argument("executions", type=int, nargs="?", default=10)
    args = parser.parse_args(argv)
    asyncio.run(run(args.side, args.executions))


if __name__ == "__main__":
    main()
