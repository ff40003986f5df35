"""Start-up warnings about the environment: misspelt DELIVERY_GATEWAY_* names and key lists that list nothing.

Pure: environments are passed in as dicts; never reads the process environment or a .env file of the developer.
"""

from __future__ import annotations

from delivery_gateway.ops.environment import environment_warnings, read_dotenv, setting_names


def warnings_for(environ: dict[str, str], dotenv: dict[str, str] | None = None) -> list[str]:
    return environment_warnings(environ, {} if dotenv is None else dotenv)


def test_a_typo_is_named_with_the_setting_it_probably_meant() -> None:
    (warning,) = warnings_for({"DELIVERY_GATEWAY_API_KEY": "k-1234567890", "PATH": "/bin"})
    assert warning.startswith("DELIVERY_GATEWAY_API_KEY (in the environment) is not a setting")
    assert warning.endswith("did you mean DELIVERY_GATEWAY_API_KEYS?")
    assert "k-1234567890" not in warning  # a value is never shown: it may be a secret


def test_an_unknown_name_without_a_close_match_is_still_named() -> None:
    (warning,) = warnings_for({"DELIVERY_GATEWAY_FROBNICATE": "1"})
    assert "DELIVERY_GATEWAY_FROBNICATE" in warning and "did you mean" not in warning


def test_settings_in_any_case_and_the_tooling_variables_are_not_warned_about() -> None:
    environ = {name: "x" for name in setting_names() if name.startswith("DELIVERY_GATEWAY_")}
    environ.pop("DELIVERY_GATEWAY_API_KEYS")  # list settings are checked for emptiness, not names
    environ.update(
        {
            "delivery_gateway_max_page_size": "10",  # the settings loader ignores case
            "DELIVERY_GATEWAY_REQUIRE_REDIS": "1",
            "DELIVERY_GATEWAY_RUN_SLOW": "1",
            "DELIVERY_GATEWAY_TEST_REDIS_URL": "redis://x",
            "DELIVERY_GATEWAY_BENCH_POSTGRES": "1",
            "DELIVERY_GATEWAY_TOKEN": "client example's token",
        }
    )
    environ = {k: v for k, v in environ.items() if k not in ("DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS",)}
    assert [w for w in warnings_for(environ) if "is not a setting" in w] == []


def test_empty_key_lists_are_warned_about_one_line_each() -> None:
    warnings = warnings_for(
        {"DELIVERY_GATEWAY_API_KEYS": ",", "DELIVERY_GATEWAY_CHAT_SERVICE_SIDS": " , "},
        {"DELIVERY_GATEWAY_TWILIO_SIGNING_KEYS": ""},
    )
    assert len(warnings) == 3
    for name in ("API_KEYS", "CHAT_SERVICE_SIDS", "TWILIO_SIGNING_KEYS"):
        assert sum(f"DELIVERY_GATEWAY_{name} is set but lists nothing" in w for w in warnings) == 1


def test_lists_with_items_and_unset_lists_are_fine() -> None:
    assert warnings_for({"DELIVERY_GATEWAY_API_KEYS": "k-1234567890123456,"}) == []
    assert warnings_for({}) == []


def test_the_dotenv_file_is_checked_too(tmp_path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DELIVERY_GATEWAY_INTROSPECTON=false\nDELIVERY_GATEWAY_API_KEYS=,\n")
    warnings = environment_warnings({}, read_dotenv(env_file))
    assert warnings[0].startswith("DELIVERY_GATEWAY_INTROSPECTON (in the .env) is not a setting")
    assert warnings[0].endswith("did you mean DELIVERY_GATEWAY_INTROSPECTION?")
    assert "DELIVERY_GATEWAY_API_KEYS is set but lists nothing" in warnings[1]
    assert read_dotenv(tmp_path / "missing.env") == {}
