"""deploy/: the alert rules pass `promtool check rules` and their unit tests (one per alert), each
alert links its runbook section, and every query of the Grafana dashboard names a metric that
eventfwd serves. promtool comes from Debian's `prometheus` package, which scripts/bootstrap
installs: its absence is a failure, not a skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from eventfwd.ops.metrics import FAMILIES
from producers.metrics import FAMILIES as PRODUCER_FAMILIES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS, ALERT_TESTS = DEPLOY / "alerts.yml", DEPLOY / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "eventfwd.json"
RUNBOOK = ROOT / "docs" / "runbook.md"
SERVED = set(FAMILIES) | set(PRODUCER_FAMILIES)


def promtool(*args: str, cwd: Path = DEPLOY) -> str:
    exe = shutil.which("promtool")
    assert exe, "promtool is missing: run scripts/bootstrap (apt-get install prometheus)"
    done = subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def alert_names(text: str) -> list[str]:
    return re.findall(r"^      - alert: (\w+)$", text, re.M)


def slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    assert "SUCCESS" in promtool("check", "rules", ALERTS.name)


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", ALERT_TESTS.name)


def test_every_alert_has_a_unit_test_and_a_runbook_section() -> None:
    rules = ALERTS.read_text()
    names = alert_names(rules)
    tested = set(re.findall(r"^        alertname: (\w+)$", ALERT_TESTS.read_text(), re.M))
    assert names and set(names) == tested, set(names) ^ tested
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), re.M)}
    blocks = re.split(r"\n      - alert: ", rules)[1:]
    for block in blocks:
        url = re.search(r'runbook_url: "([^"]+)"', block)
        assert url, block.split("\n", 1)[0]
        assert url.group(1).split("#")[1] in anchors, url.group(1)


def dashboard_queries() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def test_every_dashboard_query_names_a_metric_eventfwd_serves() -> None:
    queries = dashboard_queries()
    assert len(queries) > 10
    for expr in queries:
        names = re.findall(r"\beventfwd_[a-z0-9_]+", expr)
        assert names, expr
        for name in names:
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            assert name in SERVED or base in SERVED, f"{name} in {expr}"


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses a rule's expression: one recording rule per panel query
    rules = [
        {"record": f"check:{i}", "expr": expr.replace("$platform", ".*")}
        for i, expr in enumerate(dashboard_queries())
        if not expr.startswith("label_values(")
    ]
    (tmp_path / "dash.yml").write_text(json.dumps({"groups": [{"name": "d", "rules": rules}]}))
    promtool("check", "rules", "dash.yml", cwd=tmp_path)
