"""The Dockerfile and compose.yaml, checked without Docker: their settings are ones the gateway knows and agree with
each other, and (slow, CI) the image's install step run the same way in a fresh venv, then the compose services
(emulator, webhooks install, gateway) started from that install with compose's own settings pointed at this
machine's Redis and PostgreSQL.

Never runs a Dockerfile command other than its pip installs (the rest need a container: they are listed and
checked); everything it starts listens on 127.0.0.1 and is stopped by the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
import venv
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
import yaml

from delivery_gateway.cli import build_parser
from delivery_gateway.kernel.settings import Settings
from tests.app_support import free_port
from tests.redis_support import REDIS_URL, require_redis

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
SLOW_ENV = "DELIVERY_GATEWAY_RUN_SLOW"
# Dockerfile RUN commands that need a container (users, ownership) and are not run here.
CONTAINER_ONLY = ("useradd ", "mkdir ", "chown ")


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    steps = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, rest = line.partition(" ")
            steps.append((instruction.upper(), rest.strip()))
    return steps


def exec_form(arguments: str) -> list[str]:
    return json.loads(arguments[arguments.index("[") :])


def known_variables() -> set[str]:
    return {field.alias or name for name, field in Settings.model_fields.items()}


# ---- fast checks: always run -------------------------------------------------------------------------------------


def test_dockerfile_copies_what_exists_and_serves_on_the_port_it_checks():
    steps = dockerfile()
    for instruction, arguments in steps:
        if instruction == "COPY":
            for source in arguments.split()[:-1]:
                assert (ROOT / source).exists(), source
    cmd = exec_form(next(a for i, a in steps if i == "CMD"))
    assert cmd[:2] == ["delivery-gateway", "serve"] and "0.0.0.0" in cmd
    port = cmd[cmd.index("--port") + 1]
    assert next(a for i, a in steps if i == "EXPOSE") == port
    assert f"127.0.0.1:{port}/readyz" in next(a for i, a in steps if i == "HEALTHCHECK")
    assert next(a for i, a in steps if i == "USER") != "root"
    for instruction, arguments in steps:
        if instruction == "RUN":
            for command in arguments.split("&&"):
                command = command.strip()
                assert command.startswith(("pip install ", *CONTAINER_ONLY)), f"unknown install step: {command}"


def test_compose_runs_several_replicas_on_shared_backends_behind_the_proxy():
    gateway = SERVICES["gateway"]
    env = gateway["environment"]
    assert gateway["deploy"]["replicas"] >= 2
    assert set(env) - {"<<"} <= known_variables(), set(env) - known_variables()
    for name in ("DELIVERY_GATEWAY_PUBSUB_URL", "DELIVERY_GATEWAY_CACHE_URL"):
        assert urlsplit(env[name]).scheme == "redis" and "prefix=" in urlsplit(env[name]).query, name
    assert urlsplit(env["DELIVERY_GATEWAY_STORE_URL"]).scheme == "postgresql"
    webhook_url = SERVICES["webhooks"]["command"][-1]
    assert webhook_url == env["DELIVERY_GATEWAY_PUBLIC_URL"] + "/webhooks/twilio"
    assert urlsplit(webhook_url).netloc == f"proxy:{SERVICES['proxy']['ports'][0].split(':')[-1]}"
    nginx = (ROOT / SERVICES["proxy"]["volumes"][0].split(":")[0]).read_text()
    for directive in ("proxy_set_header Upgrade", "proxy_set_header Connection", "proxy_buffering off", "gateway:8000"):
        assert directive in nginx, directive


def test_compose_commands_are_commands_of_the_cli():
    parser = build_parser()
    for name, service in SERVICES.items():
        if service.get("build") and "command" in service:
            command = service["command"]
            assert command[0] == "delivery-gateway", name
            parser.parse_args(command[1:])  # exits (fails the test) on an unknown command or option


# ---- slow: the image's install step and the compose services, from a fresh venv (CI sets the switch) -----------


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv with the package installed exactly as the Dockerfile's RUN steps do, from a copy of what it COPYs."""
    if not (os.environ.get(SLOW_ENV) or os.environ.get("CI")):
        pytest.skip(f"slow (about 30 s): set {SLOW_ENV}=1 (CI does)")
    base = tmp_path_factory.mktemp("image")
    context, env_vars, workdir = base / "context", dict(os.environ), Path("/")
    target = base / "venv"
    venv.create(target, with_pip=True)
    python = target / "bin" / "python"
    for instruction, arguments in dockerfile():
        if instruction == "ENV":
            env_vars.update(dict(re.findall(r"(\w+)=(\S+)", arguments)))
        elif instruction == "WORKDIR":
            workdir = Path(arguments)
        elif instruction == "COPY":
            *sources, dest = arguments.split()
            destination = context / workdir.relative_to("/") / dest
            for source in sources:
                path = ROOT / source
                if path.is_dir():
                    shutil.copytree(path, destination, ignore=shutil.ignore_patterns("__pycache__"))
                else:  # files go into `dest`, a folder (Docker's rule with several sources)
                    destination.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, destination / path.name)
        elif instruction == "RUN":
            for command in arguments.split("&&"):
                words = shlex.split(command)
                if words[:2] == ["pip", "install"]:
                    cwd = context / workdir.relative_to("/")
                    subprocess.run(
                        [str(python), "-m", "pip", "install", "--quiet", *words[2:]],
                        cwd=cwd,
                        env=env_vars,
                        check=True,
                        timeout=600,
                    )
    return target


def mapped(value: str, hosts: dict[str, str]) -> str:
    for compose_host, local in hosts.items():
        value = value.replace(compose_host, local)
    return value


@contextmanager
def service(argv: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class ServiceExited(AssertionError):
    def __init__(self, process: subprocess.Popen) -> None:
        self.output = process.stdout.read()
        super().__init__(f"{process.args} exited {process.returncode}:\n{self.output}")


def wait_ready(url: str, process: subprocess.Popen, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceExited(process)
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {seconds} s")


@pytest.fixture
def postgres_database() -> Iterator[str]:
    psql = shutil.which("psql")
    if psql is None:
        if os.environ.get("DELIVERY_GATEWAY_REQUIRE_POSTGRES"):
            pytest.fail("psql not found and DELIVERY_GATEWAY_REQUIRE_POSTGRES is set")
        pytest.skip("psql not found")
    name = f"dg_image_{uuid.uuid4().hex[:12]}"
    base = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"]
    created = subprocess.run([*base, f"CREATE DATABASE {name}"], capture_output=True, text=True)
    if created.returncode != 0:
        if os.environ.get("DELIVERY_GATEWAY_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL unreachable: {created.stderr}")
        pytest.skip(f"PostgreSQL unreachable: {created.stderr.strip()}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        subprocess.run([*base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    require_redis()
    prefix = f"dgtest:image:{uuid.uuid4().hex[:12]}:"
    yield prefix
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)


# The install step alone (a fresh venv, pip install) takes 30 s on a quiet machine and several times that on a busy
# one; the suite-wide 120 s timeout counts fixtures too.
@pytest.mark.timeout(480)
def test_the_image_install_step_runs_the_compose_services(installed, postgres_database, redis_prefix, tmp_path):
    prefix = redis_prefix
    redis = urlsplit(REDIS_URL)
    emulator_port, gateway_port = free_port(), free_port()
    hosts = {
        "postgresql://gateway:gateway@postgres:5432/delivery_gateway": postgres_database,
        "redis://redis:6379/0": urlunsplit((redis.scheme, redis.netloc, redis.path, "", "")),
        "prefix=dg:compose:": f"prefix={prefix}",
        "http://emulator:8099": f"http://127.0.0.1:{emulator_port}",
        "http://proxy:8080": f"http://127.0.0.1:{gateway_port}",  # no proxy here: Twilio calls the gateway
    }
    bin_dir = installed / "bin"

    def env_of(name: str) -> dict[str, str]:
        variables = {k: mapped(str(v), hosts) for k, v in SERVICES[name]["environment"].items() if k != "<<"}
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("DELIVERY_GATEWAY_", "TWILIO_"))}
        return {**clean, **variables, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def argv(name: str, port: int | None = None) -> list[str]:
        command = [mapped(part, hosts) for part in SERVICES[name]["command"]]
        if port is not None:
            command[command.index("--port") + 1] = str(port)
            command[command.index("--host") + 1] = "127.0.0.1"
        return [str(bin_dir / command[0]), *command[1:]]

    serve = exec_form(next(a for i, a in dockerfile() if i == "CMD"))
    serve[serve.index("--host") + 1], serve[serve.index("--port") + 1] = "127.0.0.1", str(gateway_port)
    with service(argv("emulator", emulator_port), env_of("emulator"), tmp_path):
        installed_hook = None
        for _ in range(50):  # the one-shot service restarts on failure until the emulator answers
            installed_hook = subprocess.run(argv("webhooks"), env=env_of("webhooks"), capture_output=True, text=True)
            if installed_hook.returncode == 0:
                break
            time.sleep(0.2)
        assert installed_hook.returncode == 0, installed_hook.stderr
        assert f"http://127.0.0.1:{gateway_port}/webhooks/twilio" in installed_hook.stdout

        gateway_env = env_of("gateway")
        with service([str(bin_dir / serve[0]), *serve[1:]], gateway_env, tmp_path) as gateway:
            base = f"http://127.0.0.1:{gateway_port}"
            ready = wait_ready(f"{base}/readyz", gateway)
            assert ready.json()["status"] == "ok"
            healthcheck = exec_form(next(a for i, a in dockerfile() if i == "HEALTHCHECK"))
            healthcheck = [
                str(bin_dir / healthcheck[0]),
                *(p.replace(":8000/", f":{gateway_port}/") for p in healthcheck[1:]),
            ]
            assert subprocess.run(healthcheck, timeout=10).returncode == 0

            # A message sent through the emulator's REST API: its simulated deliveries reach the gateway as webhooks
            # signed for the public URL.
            twilio = (gateway_env["TWILIO_ACCOUNT_SID"], gateway_env["TWILIO_AUTH_TOKEN"])
            emulator_url = gateway_env["DELIVERY_GATEWAY_TWILIO_BASE_URL"]
            listed = httpx.get(f"{emulator_url}/v1/Conversations", auth=twilio).json()["conversations"]
            order = next(c["sid"] for c in listed if c["unique_name"] == "order-1042")
            sent = httpx.post(
                f"{emulator_url}/v1/Conversations/{order}/Messages",
                auth=twilio,
                data={"Author": "agent.alice", "Body": "from the compose test"},
                headers={"X-Twilio-Webhook-Enabled": "true"},
            )
            assert sent.status_code == 201, sent.text
            deadline, accepted = time.monotonic() + 20, 0.0
            while time.monotonic() < deadline and not accepted:
                accepted = sum(
                    float(line.rsplit(" ", 1)[1])
                    for line in httpx.get(f"{base}/metrics").text.splitlines()
                    if line.startswith("delivery_gateway_webhooks_received_total{") and 'outcome="accepted"' in line
                )
                time.sleep(0.3)
            assert accepted > 0, "no signed webhook was accepted"

            key = gateway_env["DELIVERY_GATEWAY_API_KEYS"]
            answer = httpx.post(
                f"{base}/graphql",
                json={"query": "{ conversations(first: 10) { edges { node { uniqueName } } } }"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=30,
            ).json()
            assert "errors" not in answer, answer
            assert {"node": {"uniqueName": "order-1042"}} in answer["data"]["conversations"]["edges"]
            # The installed (not editable) package carries the pages' assets.
            assert httpx.get(f"{base}/demo").status_code == 200
            assert httpx.get(f"{base}/static/vendor/graphiql/graphiql.min.js").status_code == 200
