"""Settings from defaults, a TOML file and the environment, in that precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from appliance import settings as settings_module
from appliance.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def no_machine_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the machine's own settings files out of every test."""
    monkeypatch.setattr(
        settings_module, "CONFIG_PATHS", (tmp_path / "no-such-seedqa.toml",)
    )
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _sqlite_file(url: str) -> Path:
    parsed = make_url(url)
    assert parsed.get_backend_name() == "sqlite"
    assert parsed.database is not None
    return Path(parsed.database)


def test_defaults_put_data_under_xdg_data_home(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"

    settings = Settings.load(environ={"XDG_DATA_HOME": str(xdg)})

    assert settings.data_dir == xdg / "seedqa"
    assert _sqlite_file(settings.database_url) == (xdg / "seedqa" / "seedqa.db")
    assert settings.lab == ""
    assert settings.images_dir == xdg / "seedqa" / "images"
    assert settings.calibrations_dir == xdg / "seedqa" / "calibrations"


def test_defaults_without_xdg_data_home_are_in_the_home_folder(tmp_path: Path) -> None:
    settings = Settings.load(environ={})

    assert settings.data_dir == tmp_path / "home" / ".local" / "share" / "seedqa"


@pytest.mark.parametrize("table", ["", "[seedqa]\n"], ids=["top-level", "seedqa-table"])
def test_config_file_values_are_read(tmp_path: Path, table: str) -> None:
    config = tmp_path / "seedqa.toml"
    config.write_text(
        f"{table}"
        f'data_dir = "{tmp_path / "from-file"}"\n'
        'database_url = "sqlite:////srv/seedqa/file.db"\n'
        'lab = "Seed Lab North"\n'
    )

    settings = Settings.load(config=config, environ={})

    assert settings.data_dir == tmp_path / "from-file"
    assert settings.database_url == "sqlite:////srv/seedqa/file.db"
    assert settings.lab == "Seed Lab North"


def test_config_file_data_dir_expands_the_home_folder(tmp_path: Path) -> None:
    config = tmp_path / "seedqa.toml"
    config.write_text('data_dir = "~/seedqa-data"\n')

    settings = Settings.load(config=config, environ={})

    assert settings.data_dir == tmp_path / "home" / "seedqa-data"
    assert _sqlite_file(settings.database_url) == (
        tmp_path / "home" / "seedqa-data" / "seedqa.db"
    )


def test_environment_overrides_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "seedqa.toml"
    config.write_text(
        "[seedqa]\n"
        f'data_dir = "{tmp_path / "from-file"}"\n'
        'database_url = "sqlite:////srv/seedqa/file.db"\n'
        'lab = "Seed Lab North"\n'
    )
    environ = {
        "SEEDQA_DATA_DIR": str(tmp_path / "from-env"),
        "SEEDQA_DATABASE_URL": "sqlite:////srv/seedqa/env.db",
    }

    settings = Settings.load(config=config, environ=environ)

    assert settings.data_dir == tmp_path / "from-env"
    assert settings.database_url == "sqlite:////srv/seedqa/env.db"
    assert settings.lab == "Seed Lab North"


def test_data_dir_from_environment_carries_the_default_database(tmp_path: Path) -> None:
    settings = Settings.load(environ={"SEEDQA_DATA_DIR": str(tmp_path / "env")})

    assert settings.data_dir == tmp_path / "env"
    assert _sqlite_file(settings.database_url) == tmp_path / "env" / "seedqa.db"


def test_seedqa_config_variable_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.toml"
    config.write_text('lab = "Annex"\n')

    settings = Settings.load(environ={"SEEDQA_CONFIG": str(config)})

    assert settings.lab == "Annex"


def test_first_existing_file_on_the_search_path_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, system = tmp_path / "user.toml", tmp_path / "system.toml"
    system.write_text('lab = "system"\n')
    monkeypatch.setattr(settings_module, "CONFIG_PATHS", (user, system))
    assert Settings.load(environ={}).lab == "system"

    user.write_text('lab = "user"\n')
    assert Settings.load(environ={}).lab == "user"


def test_missing_explicit_config_file_raises(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"

    with pytest.raises(SettingsError, match="missing.toml"):
        Settings.load(config=missing, environ={})


def test_missing_file_named_by_seedqa_config_raises(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"

    with pytest.raises(SettingsError, match="missing.toml"):
        Settings.load(environ={"SEEDQA_CONFIG": str(missing)})


def test_invalid_toml_raises(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("data_dir = [\n")

    with pytest.raises(SettingsError, match="broken.toml"):
        Settings.load(config=config, environ={})


def test_file_that_is_not_utf8_raises_settings_error(tmp_path: Path) -> None:
    config = tmp_path / "binary.toml"
    config.write_bytes(b"\xff\xfe\x00lab")

    with pytest.raises(SettingsError, match="binary.toml"):
        Settings.load(config=config, environ={})


def test_data_dir_that_is_not_a_string_raises_settings_error(tmp_path: Path) -> None:
    config = tmp_path / "typed.toml"
    config.write_text("data_dir = 5\n")

    with pytest.raises(SettingsError, match="data_dir"):
        Settings.load(config=config, environ={})


def test_appliance_settings_default_and_read_from_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    defaults = Settings.load(environ={"SEEDQA_DATA_DIR": str(data)})
    assert defaults.backups_dir == data / "backups"
    assert (defaults.backup_keep, defaults.min_free_disk_mb) == (14, 2048.0)

    config = tmp_path / "seedqa.toml"
    config.write_text(
        f'backup_dir = "{tmp_path / "usb"}"\nbackup_keep = 30\n'
        "backup_max_age_h = 25\ncalibration_max_age_days = 7.5\n"
    )
    settings = Settings.load(config=config, environ={"SEEDQA_DATA_DIR": str(data)})
    assert settings.backups_dir == tmp_path / "usb"
    assert settings.backup_keep == 30
    assert settings.backup_max_age_h == 25.0
    assert settings.calibration_max_age_days == 7.5

    moved = Settings.load(
        config=config,
        environ={
            "SEEDQA_DATA_DIR": str(data),
            "SEEDQA_BACKUP_DIR": str(tmp_path / "b"),
        },
    )
    assert moved.backups_dir == tmp_path / "b"


@pytest.mark.parametrize(
    "line", ["backup_keep = 0", "backup_keep = 2.5", 'min_free_disk_mb = "lots"']
)
def test_bad_appliance_setting_names_the_setting(tmp_path: Path, line: str) -> None:
    config = tmp_path / "seedqa.toml"
    config.write_text(line + "\n")

    with pytest.raises(SettingsError, match=line.split()[0]):
        Settings.load(config=config, environ={})


def test_genicam_rig_settings_come_from_the_file_and_the_environment(
    tmp_path: Path,
) -> None:
    config = tmp_path / "seedqa.toml"
    config.write_text(
        'rig = "genicam"\ntop_camera = "SN-TOP"\nbottom_camera = "SN-BOT"\n'
        'genicam_producer = "/opt/vendor/gentl.cti"\n'
    )

    from_file = Settings.load(config=config, environ={})
    from_env = Settings.load(
        config=config,
        environ={"SEEDQA_TOP_CAMERA": "VikyTL_DEV_red", "SEEDQA_RIG": "simulated"},
    )

    assert from_file.rig == "genicam"
    assert (from_file.top_camera, from_file.bottom_camera) == ("SN-TOP", "SN-BOT")
    assert from_file.genicam_producer == Path("/opt/vendor/gentl.cti")
    assert (from_env.rig, from_env.top_camera) == ("simulated", "VikyTL_DEV_red")
    assert from_env.bottom_camera == "SN-BOT"


def test_rig_defaults_to_the_simulated_bench() -> None:
    settings = Settings.load(environ={})

    assert settings.rig == "simulated" and settings.genicam_producer is None
    assert settings.top_camera == settings.bottom_camera == ""


def test_an_unknown_rig_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "seedqa.toml"
    config.write_text('rig = "usb"\n')

    with pytest.raises(SettingsError, match="'simulated' or 'genicam', got 'usb'"):
        Settings.load(config=config, environ={})
