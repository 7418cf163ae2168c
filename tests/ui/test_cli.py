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
