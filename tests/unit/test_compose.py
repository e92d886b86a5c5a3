"""docker-compose.yml is valid (`docker-compose config`, Debian's docker-compose package, which
scripts/bootstrap installs: no engine is needed, and its absence is a failure, not a skip), and
the fleet's services carry their healthchecks and the observability profile its files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_compose_file_is_valid_with_every_profile(tmp_path: Path) -> None:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: run scripts/bootstrap (apt-get install docker-compose)"
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("EVENTFWD_MOLOCO_API_KEY=k\n")  # the file is git-ignored
    done = subprocess.run(
        [exe, "--profile", "dev", "--profile", "observability", "config", "--services"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    services = set(done.stdout.split())
    assert services == {"redis", "worker", "beat", "metrics", "sink", "prometheus", "grafana"}


def test_beat_and_metrics_have_healthchecks_and_the_mounted_files_exist() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert '["CMD", "eventfwd", "beat-health"]' in text
    for line in text.splitlines():
        source = line.strip().removeprefix("- ").split(":")[0]
        if source.startswith("./deploy/"):
            assert (ROOT / source).exists(), source
