"""README.md is the front door: every setting the code reads is documented there, and CI runs its test command.

Reads files only; never runs the commands it checks.
"""

from __future__ import annotations

import re
from pathlib import Path

from delivery_gateway.kernel.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table():
    documented = README
    for name, field in Settings.model_fields.items():
        alias = field.alias or name
        stem = alias.rsplit("_", 1)[0]
        short = "_" + alias.removeprefix("DELIVERY_GATEWAY_").split("_", 1)[-1]
        assert alias in documented or (stem in documented and short in documented), f"{alias} is not in README.md"


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^make (\w+)\s+#", README, flags=re.MULTILINE)
    assert commands[:2] == ["demo", "test"]
    assert re.search(r"^make test\b", (ROOT / ".ci" / "run").read_text(), flags=re.MULTILINE)
