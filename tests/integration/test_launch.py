"""How `eventfwd` starts: the Celery runtime from any directory, and a hint on a light install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import ROOT
from worker.__main__ import without_current_directory

pytestmark = pytest.mark.integration


def run_python(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTFWD_")}
    env["PYTHONPATH"] = str(ROOT)  # this checkout, as an installed package would be
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_the_celery_launcher_loads_our_worker_beside_a_users_worker_py(tmp_path: Path) -> None:
    (tmp_path / "worker.py").write_text("raise SystemExit('the wrong worker')\n")
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "__init__.py").write_text("raise SystemExit('the wrong core')\n")
    plain = run_python(tmp_path, "-m", "celery", "-A", "worker", "worker", "--help")
    assert "the wrong worker" in plain.stderr  # what the launcher is for
    ours = run_python(tmp_path, "-P", "-m", "worker", "worker", "--help")
    assert ours.returncode == 0, ours.stderr
    assert "--concurrency" in ours.stdout and "wrong" not in ours.stdout + ours.stderr


def test_the_celery_launcher_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("EVENTFWD_MAX_ATTEMPTS=many\n")
    result = run_python(tmp_path, "-P", "-m", "worker", "worker")
    assert result.returncode == 78
    assert result.stderr.strip().splitlines() == [
        "eventfwd: configuration: EVENTFWD_MAX_ATTEMPTS='many' is not a whole number"
    ]


def test_the_command_without_the_worker_side_says_which_extra_to_install(tmp_path: Path) -> None:
    code = "import sys; sys.modules['click'] = None; from eventfwd.cli import main; main()"
    result = run_python(tmp_path, "-c", code, "--help")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "pip install 'eventfwd[worker]'" in line and "click" in line


def test_the_current_directory_is_dropped_from_the_path() -> None:
    cwd = os.getcwd()
    assert without_current_directory(["", cwd, ".", "/usr/lib/python3", cwd + "/x"]) == [
        "/usr/lib/python3",
        cwd + "/x",
    ]
