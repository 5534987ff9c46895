"""Settings: defaults, MLGATE_* environment, the --config TOML file, and their order."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mlgate.settings import Settings


def test_defaults_are_the_embedded_laptop_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("MLGATE_PORT", "MLGATE_HOST", "MLGATE_MODEL_REPOSITORY", "MLGATE_MAX_BODY_BYTES"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings.load()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.model_repository is None
    assert settings.max_body_bytes == 16 * 1024 * 1024


def test_priority_flags_over_environment_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "mlgate.toml"
    config.write_text('port = 9100\nhost = "0.0.0.0"\nmax_json_depth = 10\nmodel_repository = "/srv/models"\n')
    monkeypatch.setenv("MLGATE_PORT", "9200")
    settings = Settings.load(config)
    assert settings.port == 9200 and settings.host == "0.0.0.0" and settings.max_json_depth == 10
    assert settings.model_repository == Path("/srv/models")
    assert Settings.load(config, port=9300, host=None).port == 9300
    assert type(Settings.load(config)) is Settings


def test_unknown_keys_and_bad_values_are_errors(tmp_path: Path) -> None:
    config = tmp_path / "mlgate.toml"
    config.write_text("prot = 9100\n")
    with pytest.raises(ValidationError, match="prot"):
        Settings.load(config)
    config.write_text('port = "eighty"\n')
    with pytest.raises(ValidationError, match="port"):
        Settings.load(config)
    with pytest.raises(FileNotFoundError):
        Settings.load(tmp_path / "missing.toml")


def test_security_settings_from_a_file_keep_their_types(tmp_path: Path) -> None:
    from mlgate.access import RateLimitTier

    config = tmp_path / "mlgate.toml"
    config.write_text('anonymous_models = ["digits"]\n[rate_limit_tiers.default]\nrequests = "5/minute"\n'
                      '[rate_limit_models.digits.anonymous]\nrows = "10/minute"\n')
    settings = Settings.load(config)
    assert settings.rate_limit_tiers["default"] == RateLimitTier(requests="5/minute")
    assert "anonymous" in settings.rate_limit_tiers  # the built-in tiers stay
    assert settings.rate_limit_models["digits"]["anonymous"].rows == "10/minute"
    assert settings.anonymous_models == ["digits"]
    for bad in ('anonymous_models = ["../x"]', 'trusted_proxies = ["not-an-ip"]',
                '[rate_limit_tiers.default]\nrequests = "often"'):
        config.write_text(bad + "\n")
        with pytest.raises(ValidationError):
            Settings.load(config)
