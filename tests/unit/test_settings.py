from __future__ import annotations

from pathlib import Path

import pytest

from eventfwd.core.errors import ConfigError
from eventfwd.core.settings import Settings, read_dotenv


def test_defaults_match_the_design() -> None:
    s = Settings.from_mapping({})
    assert s.redis_url == "redis://localhost:6379/0"
    assert (s.retry_base_s, s.max_attempts, s.circuit_failure_threshold) == (5.0, 6, 5)
    assert (s.circuit_probe_s, s.replay_interval_s, s.max_replays) == (900.0, 900.0, 10)
    assert (s.pump_interval_s, s.lease_s, s.rate_limit_per_s) == (1.0, 60.0, 30.0)
    assert (s.http_timeout_s, s.key_prefix, s.strict_fields) == (10.0, "eventfwd", False)
    assert s.max_event_age_s == 7 * 86400


def test_durations_accept_fractions_of_a_second() -> None:
    s = Settings.from_mapping(
        {"EVENTFWD_RETRY_BASE_SECONDS": "0.25", "EVENTFWD_PUMP_INTERVAL_SECONDS": "0.1"}
    )
    assert (s.retry_base_s, s.pump_interval_s) == (0.25, 0.1)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EVENTFWD_MAX_ATTEMPTS": "many"}, "EVENTFWD_MAX_ATTEMPTS"),
        ({"EVENTFWD_MAX_ATTEMPTS": "0"}, "EVENTFWD_MAX_ATTEMPTS"),
        ({"EVENTFWD_RETRY_BASE_SECONDS": "-1"}, "EVENTFWD_RETRY_BASE_SECONDS"),
        ({"EVENTFWD_HTTP_TIMEOUT_SECONDS": "nan"}, "EVENTFWD_HTTP_TIMEOUT_SECONDS"),
        ({"EVENTFWD_STRICT_FIELDS": "maybe"}, "EVENTFWD_STRICT_FIELDS"),
        ({"EVENTFWD_REDIS_URL": "http://x"}, "EVENTFWD_REDIS_URL"),
        ({"EVENTFWD_MOLOCO_BASE_URL": "ftp://x"}, "EVENTFWD_MOLOCO_BASE_URL"),
        ({"EVENTFWD_REDIS_ULR": "redis://x"}, "EVENTFWD_REDIS_ULR"),
        ({"EVENTFWD_LEASE_SECONDS": "15"}, "EVENTFWD_LEASE_SECONDS"),
    ],
)
def test_bad_or_unknown_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_mapping(env)


def test_a_misspelt_setting_suggests_the_right_name() -> None:
    with pytest.raises(ConfigError, match="did you mean EVENTFWD_REDIS_URL"):
        Settings.from_mapping({"EVENTFWD_REDIS_ULR": "redis://x"})


def test_per_platform_overrides_win_over_the_global_values() -> None:
    s = Settings.from_mapping(
        {
            "EVENTFWD_MOLOCO_BASE_URL": "https://global.example/",
            "EVENTFWD_MOLOCO_API_KEY": "g",
            "EVENTFWD_PLATFORM_ACME_US_BASE_URL": "https://acme.example",
            "EVENTFWD_PLATFORM_ACME_US_API_KEY": "a",
            "EVENTFWD_PLATFORM_ACME_US_RATE_LIMIT_PER_SECOND": "5",
        }
    )
    acme, other = s.platform("acme-us"), s.platform("other")
    assert (acme.base_url, acme.api_key, acme.rate_limit_per_s) == (
        "https://acme.example",
        "a",
        5.0,
    )
    assert (other.base_url, other.api_key, other.rate_limit_per_s) == (
        "https://global.example",
        "g",
        30.0,
    )
    assert acme.endpoint == "https://acme.example/rmp/event/v1/platforms/acme-us/userevents"


def test_api_keys_never_appear_in_repr_or_redacted_output() -> None:
    s = Settings.from_mapping(
        {
            "EVENTFWD_MOLOCO_API_KEY": "sekrit-1",
            "EVENTFWD_PLATFORM_X_API_KEY": "sekrit-2",
            "EVENTFWD_REDIS_URL": "redis://:pw-3@host:6379/0",
        }
    )
    text = repr(s) + repr(s.redacted()) + repr(s.platform("x"))
    for secret in ("sekrit-1", "sekrit-2", "pw-3"):
        assert secret not in text


def test_worker_refuses_to_start_without_moloco_url_or_key() -> None:
    with pytest.raises(ConfigError, match="EVENTFWD_MOLOCO_BASE_URL"):
        Settings.from_mapping({}).require_delivery_config()
    with pytest.raises(ConfigError, match="EVENTFWD_MOLOCO_API_KEY"):
        Settings.from_mapping({"EVENTFWD_MOLOCO_BASE_URL": "http://x"}).require_delivery_config()


def test_every_setting_is_documented_in_the_configuration_reference_and_env_example() -> None:
    from pathlib import Path

    from eventfwd.core.settings import _FIELDS

    root = Path(__file__).parents[2]
    readme = (root / "docs" / "reference" / "configuration.md").read_text()
    example = (root / ".env.example").read_text()
    for suffix in _FIELDS:
        assert f"`EVENTFWD_{suffix}`" in readme, suffix
        assert f"EVENTFWD_{suffix}=" in example, suffix


# -- the platform allow-list and per-platform collisions (issue #11, items 2 and 6) ------------


def test_without_an_allow_list_every_platform_is_allowed() -> None:
    s = Settings.from_mapping({})
    assert s.allowed_platforms is None
    assert s.allows_platform("anything") is True


def test_the_allow_list_names_exactly_the_platforms_allowed() -> None:
    s = Settings.from_mapping({"EVENTFWD_ALLOWED_PLATFORMS": " acme-us, acme-eu ,shop"})
    assert s.allowed_platforms == frozenset({"acme-us", "acme-eu", "shop"})
    assert s.allows_platform("acme-us") and s.allows_platform("shop")
    assert not s.allows_platform("acme.us")
    assert not s.allows_platform("ACME-US")
    assert not s.allows_platform("")


@pytest.mark.parametrize("raw", ["", " , ", "ok,a/b", "ok,..", "x y"])
def test_a_bad_allow_list_is_refused_at_start(raw: str) -> None:
    with pytest.raises(ConfigError, match="EVENTFWD_ALLOWED_PLATFORMS"):
        Settings.from_mapping({"EVENTFWD_ALLOWED_PLATFORMS": raw})


@pytest.mark.parametrize("other", ["acme.eu", "ACME_EU", "acme_eu", "Acme-Eu"])
def test_allowed_platforms_that_would_share_override_variables_are_refused(other: str) -> None:
    with pytest.raises(ConfigError, match="EVENTFWD_PLATFORM_ACME_EU_") as err:
        Settings.from_mapping({"EVENTFWD_ALLOWED_PLATFORMS": f"acme-eu,{other}"})
    assert "acme-eu" in str(err.value) and other in str(err.value)


def test_an_override_for_no_allowed_platform_is_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="EVENTFWD_PLATFORM_ACME_EU_API_KEY"):
        Settings.from_mapping(
            {
                "EVENTFWD_ALLOWED_PLATFORMS": "acme-us",
                "EVENTFWD_PLATFORM_ACME_EU_API_KEY": "k",
            }
        )


def test_with_an_allow_list_an_override_reaches_only_its_own_platform() -> None:
    s = Settings.from_mapping(
        {
            "EVENTFWD_ALLOWED_PLATFORMS": "acme-eu",
            "EVENTFWD_MOLOCO_API_KEY": "global",
            "EVENTFWD_PLATFORM_ACME_EU_API_KEY": "eu-key",
        }
    )
    assert s.platform("acme-eu").api_key == "eu-key"
    # A look-alike id is not allowed, and does not borrow acme-eu's key either.
    assert s.platform("acme.eu").api_key == "global"


def test_an_inline_comment_in_dotenv_is_not_part_of_the_value(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# the fleet's settings\n"
        "EVENTFWD_MOLOCO_BASE_URL=https://acme-evt.mcm-api.moloco.com  # prod\n"
        "export EVENTFWD_HASH_PEPPER='p#pper'\n"
        'EVENTFWD_MOLOCO_API_KEY="k$HOME"  # quoted values are kept as written\n'
        "OTHER_TOOL=ignored\n"
    )
    values = read_dotenv(dotenv)
    assert values == {
        "EVENTFWD_MOLOCO_BASE_URL": "https://acme-evt.mcm-api.moloco.com",
        "EVENTFWD_HASH_PEPPER": "p#pper",
        "EVENTFWD_MOLOCO_API_KEY": "k$HOME",
    }
    settings = Settings.from_mapping(values)
    assert settings.platform("acme").endpoint == (
        "https://acme-evt.mcm-api.moloco.com/rmp/event/v1/platforms/acme/userevents"
    )


@pytest.mark.parametrize(
    "name",
    [
        "EVENTFWD_MOLOCO_BASE_URL",
        "EVENTFWD_REDIS_URL",
        "EVENTFWD_PLATFORM_ACME_BASE_URL",
    ],
)
def test_a_url_with_whitespace_inside_is_refused_naming_the_variable(name: str) -> None:
    scheme = "redis" if "REDIS" in name else "https"
    with pytest.raises(ConfigError, match=name):
        Settings.from_mapping({name: f"{scheme}://host.example  # prod"})
    with pytest.raises(ConfigError, match="whitespace"):
        Settings.from_mapping({name: f"{scheme}://host .example"})
    # surrounding whitespace is only trimmed
    Settings.from_mapping({name: f" {scheme}://host.example \n"})
