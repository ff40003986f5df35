"""wrk, the native HTTP load generator the HTTP rows use, driven by Lua scripts, with its own CPU time measured.

Never runs without a deadline (`-d` plus a kill after a grace period) and never targets anything but loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import ServerProcess

INSTALL_HINT = "wrk not found: install the Debian package with `apt-get install -y wrk`, then run the bench again"

# Printed by the script's done(): one line of JSON after the WRKJSON marker. Latencies are in microseconds.
_DONE = r"""
done = function(summary, latency, requests)
  local wrapped = 0
  for _, t in ipairs(threads) do
    wrapped = wrapped + (t:get("wrapped") or 0)
  end
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"wrapped":%d}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.max, wrapped))
end
"""

_THREADS = r"""
threads = {}
local next_id = 0
setup = function(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end
"""


class WrkMissing(RuntimeError):
    pass


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkMissing(INSTALL_HINT)
    return path


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for the ASCII we pass


def fixed_post_script(path: str, body_file: Path, headers: dict[str, str]) -> str:
    """Every request: POST `path` with the bytes of `body_file` and `headers`."""
    lines = [
        _THREADS,
        'wrk.method = "POST"',
        f"wrk.path = {_lua_string(path)}",
        f'local f = assert(io.open({_lua_string(str(body_file))}, "rb"))',
        "wrk.body = f:read('*a')",
        "f:close()",
        *(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()),
        _DONE,
    ]
    return "\n".join(lines)


def rotating_post_script(path: str, bodies_file: Path, content_type: str, signature_header: str) -> str:
    """Request i: POST `path` with line i of `bodies_file` (`<signature>\\t<body>`), each body sent once.

    Thread k of n sends lines k, k+n, k+2n, ...; a thread that runs out starts over and counts `wrapped` (those
    repeats are duplicates to the server, so the bench reports them).
    """
    return "\n".join(
        [
            _THREADS,
            "local sigs, bodies, n = {}, {}, 0",
            "local i, stride = 0, 1",
            "wrapped = 0",
            "init = function(args)",
            f"  for line in io.lines({_lua_string(str(bodies_file))}) do",
            '    local tab = string.find(line, "\\t", 1, true)',
            "    n = n + 1",
            "    sigs[n] = string.sub(line, 1, tab - 1)",
            "    bodies[n] = string.sub(line, tab + 1)",
            "  end",
            "  i = id + 1",
            "  stride = tonumber(args[1] or 1)",
            "end",
            "request = function()",
            "  if i > n then",
            "    i = ((i - 1) % n) + 1",
            "    wrapped = wrapped + 1",
            "  end",
            "  local body, sig = bodies[i], sigs[i]",
            "  i = i + stride",
            f"  return wrk.format('POST', {_lua_string(path)}, "
            f"{{[{_lua_string('Content-Type')}] = {_lua_string(content_type)}, "
            f"[{_lua_string(signature_header)}] = sig}}, body)",
            "end",
            _DONE,
        ]
    )


@dataclass
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wrapped: int
    threads: int
    connections: int
    wrk_cpu_s: float
    server_cpu_s: float

    @property
    def ok_requests(self) -> int:
        return self.requests - self.non_2xx

    @property
    def rps(self) -> float:
        return self.ok_requests / self.seconds if self.seconds else 0.0

    @property
    def wrk_cpu_share(self) -> float:
        """wrk's CPU time over what its threads could use in the window (1.0 = every wrk thread saturated)."""
        return self.wrk_cpu_s / (self.seconds * self.threads) if self.seconds else float("nan")

    @property
    def server_cpu_share(self) -> float:
        return self.server_cpu_s / self.seconds if self.seconds else float("nan")


def _run_blocking(argv: list[str], timeout: float) -> tuple[str, str, float]:
    """Run wrk to completion; returns stdout, stderr and wrk's own CPU seconds (from wait4's rusage)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        return out.read().decode(), err.read().decode(), usage.ru_utime + usage.ru_stime


async def run_wrk(
    url: str,
    script: str,
    *,
    duration: float,
    connections: int,
    threads: int = 1,
    server: ServerProcess | None = None,
    script_args: list[str] | None = None,
) -> WrkResult:
    """`wrk -t threads -c connections -d duration` against `url` with the Lua `script`; measures wrk's and the
    server's CPU over the same window."""
    wrk = require_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script_path = Path(tmp) / "script.lua"
        script_path.write_text(script)
        seconds = max(1, round(duration))
        argv = [
            wrk,
            f"-t{threads}",
            f"-c{max(connections, threads)}",
            f"-d{seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(script_path),
            url,
            *(["--", *script_args] if script_args else []),
        ]
        cpu0 = server.cpu_seconds() if server else 0.0
        stdout, stderr, wrk_cpu = await asyncio.get_running_loop().run_in_executor(
            None, _run_blocking, argv, seconds + 30.0
        )
        server_cpu = (server.cpu_seconds() - cpu0) if server else 0.0
    marker = next((line for line in stdout.splitlines() if line.startswith("WRKJSON ")), None)
    if marker is None:
        raise RuntimeError(f"wrk produced no summary: {stderr.strip() or stdout.strip()}"[:500])
    data = json.loads(marker.removeprefix("WRKJSON "))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        non_2xx=data["status"],
        socket_errors=data["connect"] + data["read"] + data["write"] + data["timeout"],
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        max_ms=data["max"] / 1000,
        wrapped=data["wrapped"],
        threads=threads,
        connections=max(connections, threads),
        wrk_cpu_s=wrk_cpu,
        server_cpu_s=server_cpu,
    )
