"""FlashConfig: defaults, environment, precedence and validation."""

from __future__ import annotations

import pytest

from otel_flash import ConfigError, FlashConfig


def test_defaults() -> None:
    """The documented defaults hold."""
    config = FlashConfig()
    assert (config.log_level, config.max_log_lines, config.max_log_bytes) == ("INFO", 1000, 1 << 20)
    assert config.service_name == "otel-flash"


def test_from_env_reads_variables_and_arguments_win() -> None:
    """Variables fill fields; keyword arguments override them."""
    env = {
        "LOG_LEVEL": "debug",
        "FLASH_MAX_LOG_LINES": "10",
        "OTEL_SERVICE_NAME": "svc",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=ml%20ops",
    }
    config = FlashConfig.from_env(env, max_log_lines=20)
    assert config.log_level == "DEBUG"
    assert config.max_log_lines == 20
    assert config.service_name == "svc"
    assert dict(config.resource_attributes) == {"deployment.environment": "prod", "team": "ml ops"}


def test_from_env_ignores_empty_values() -> None:
    """An empty variable means unset."""
    assert FlashConfig.from_env({"FLASH_MAX_LOG_LINES": " "}).max_log_lines == 1000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLASH_MAX_LOG_LINES": "many"}, "FLASH_MAX_LOG_LINES='many' is invalid"),
        ({"LOG_LEVEL": "LOUD"}, "log_level must be one of DEBUG, INFO, WARNING, ERROR"),
        ({"FLASH_MAX_LOG_BYTES": "0"}, "max_log_bytes must be at least 1"),
        ({"FLASH_CAPTURE_STDIO": "maybe"}, "expected true or false"),
        ({"FLASH_MAX_MODULES": "0"}, "max_modules must be at least 1"),
        ({"FLASH_FUNCTIONS_MODULE": "my-functions"}, "functions_module must be a dotted module name"),
        ({"FLASH_ECHO_LINES": "sometimes"}, "echo_lines must be 'auto', 'on' or 'off'"),
    ],
)
def test_bad_values_are_reported(env: dict[str, str], message: str) -> None:
    """Invalid settings raise ConfigError naming the variable or field."""
    with pytest.raises(ConfigError, match=message):
        FlashConfig.from_env(env)


def test_config_is_frozen_and_replace_validates() -> None:
    """Settings cannot change under an executor; replace() builds a validated copy."""
    config = FlashConfig()
    with pytest.raises(AttributeError):
        config.max_log_lines = 5  # type: ignore[misc]  # frozen on purpose
    assert config.replace(max_log_lines=5).max_log_lines == 5
    with pytest.raises(ConfigError, match="unknown FlashConfig field"):
        config.replace(nope=1)
