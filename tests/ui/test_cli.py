"""`seedqa ui` and `seedqa-ui`: the app's two ways in."""

from __future__ import annotations

import subprocess
import sys

import pytest

from appliance.cli import main as seedqa
from ui.app import main as seedqa_ui


@pytest.mark.parametrize(
    "run", [lambda: seedqa(["ui", "--help"]), lambda: seedqa_ui(["--help"])]
)
def test_help_names_the_rig_choice(run, capsys):
    with pytest.raises(SystemExit) as stop:
        run()

    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "--rig {simulated,genicam}" in out
    assert "--seed" in out


def test_the_command_line_loads_qt_only_for_the_app():
    code = "import sys, appliance.cli; print('PyQt6' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "False"


def test_without_a_display_both_commands_say_what_to_do(monkeypatch, capsys):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")

    assert seedqa(["ui"]) == 2
    assert seedqa_ui([]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert err[0].startswith("seedqa: there is no display")
    assert err[1].startswith("seedqa-ui: there is no display")
    assert all("QT_QPA_PLATFORM" in line for line in err)
