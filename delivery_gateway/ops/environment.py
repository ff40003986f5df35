"""Start-up checks of the environment the settings were read from: typos in variable names, empty key lists.

A misspelt `DELIVERY_GATEWAY_*` variable is silently ignored by the settings loader, and a key list such as
`DELIVERY_GATEWAY_API_KEYS=","` reads as "no keys": both are warned about, one line each, naming the variable.
Never prints a variable's value (it may be a secret), and never refuses to start: the settings loader does
that for values that are invalid.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path

from delivery_gateway.kernel.settings import Settings

PREFIX = "DELIVERY_GATEWAY_"
# Variables of the project's tooling, not of the gateway: the test suite's switches, the benchmark's, and the
# example clients' token (docs/clients/). They are expected in a developer's shell.
TOOLING_PREFIXES = ("DELIVERY_GATEWAY_REQUIRE_", "DELIVERY_GATEWAY_TEST_", "DELIVERY_GATEWAY_BENCH_")
TOOLING_NAMES = frozenset({"DELIVERY_GATEWAY_RUN_SLOW", "DELIVERY_GATEWAY_CHROMIUM", "DELIVERY_GATEWAY_TOKEN"})
# Settings whose value is a list of keys or names: set but holding none is almost certainly a mistake.
LIST_SETTINGS = (
    "DELIVERY_GATEWAY_API_KEYS",
    "DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS",
    "DELIVERY_GATEWAY_CHAT_SERVICE_SIDS",
    "DELIVERY_GATEWAY_ALLOWED_ORIGINS",
    "DELIVERY_GATEWAY_TOKEN_AUDIENCES",
)


def setting_names() -> frozenset[str]:
    return frozenset(field.alias or name.upper() for name, field in Settings.model_fields.items())


def read_dotenv(path: Path = Path(".env")) -> dict[str, str]:
    """The variables of the `.env` file the settings also read (none when it does not exist)."""
    if not path.is_file():
        return {}
    from dotenv import dotenv_values  # pydantic-settings' own reader of .env files

    return {key: value or "" for key, value in dotenv_values(path).items()}


def environment_warnings(
    environ: Mapping[str, str] | None = None, dotenv: Mapping[str, str] | None = None
) -> list[str]:
    """One warning per unknown `DELIVERY_GATEWAY_*` variable and per key list that is set but empty."""
    environ = os.environ if environ is None else environ
    dotenv = read_dotenv() if dotenv is None else dotenv
    known = setting_names()
    warnings: list[str] = []
    sources = {**{name: ".env" for name in dotenv}, **{name: "environment" for name in environ}}
    for name in sorted(sources):
        upper = name.upper()  # the settings loader matches names case-insensitively
        if not upper.startswith(PREFIX) or upper in known:
            continue
        if upper in TOOLING_NAMES or upper.startswith(TOOLING_PREFIXES):
            continue
        # Compared without the shared prefix, which would make every name look alike.
        stems = sorted(name.removeprefix(PREFIX) for name in known if name.startswith(PREFIX))
        hint = difflib.get_close_matches(upper.removeprefix(PREFIX), stems, n=1, cutoff=0.75)
        suggestion = f"; did you mean {PREFIX}{hint[0]}?" if hint else ""
        warnings.append(f"{name} (in the {sources[name]}) is not a setting of the gateway and is ignored{suggestion}")
    by_upper = {**{k.upper(): v for k, v in dotenv.items()}, **{k.upper(): v for k, v in environ.items()}}
    for name in LIST_SETTINGS:
        value = by_upper.get(name)
        if value is not None and not [item for item in value.split(",") if item.strip()]:
            warnings.append(f"{name} is set but lists nothing (empty items are ignored), so it has no effect")
    return warnings
