"""The command line's frame: help, version, usage errors, entry points."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from memprobe import __version__
from memprobe.cli import main
from memprobe.commands import COMMANDS


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"memprobe {__version__}"


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "compare" in capsys.readouterr().err


def test_every_registered_command_has_help() -> None:
    for name in COMMANDS:
        with pytest.raises(SystemExit) as info:
            main([name, "--help"])
        assert info.value.code == 0


def test_an_unknown_option_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["compare", "--no-such-option"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("memprobe: unrecognized arguments")


def test_python_dash_m_and_the_console_script_are_the_same_program() -> None:
    script = Path(sys.executable).parent / "memprobe"
    if not script.exists():
        pytest.skip("memprobe is not installed in this interpreter's environment")
    for argv in ([sys.executable, "-m", "memprobe", "--version"], [str(script), "--version"]):
        run = subprocess.run(argv, capture_output=True, text=True)
        assert run.returncode == 0 and run.stdout.strip() == f"memprobe {__version__}"
