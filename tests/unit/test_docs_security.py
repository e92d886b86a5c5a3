"""The integration snippets (docs/integrate.md) teach a safe pattern, and the security page
exists.

(issue #11, item 2 and 6: the snippets are copied into real apps as they are)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
INTEGRATE = (ROOT / "docs" / "integrate.md").read_text()
DOCS = "\n".join(page.read_text() for page in sorted((ROOT / "docs").glob("*.md")))


def snippet(after: str) -> str:
    """The first python code block after the paragraph that starts with `after`."""
    start = INTEGRATE.index(after)
    match = re.search(r"```python\n(.*?)```", INTEGRATE[start:], re.DOTALL)
    assert match, after
    return match.group(1)


@pytest.mark.parametrize(
    ("framework", "size_limit"),
    [
        ("**Flask**", "MAX_CONTENT_LENGTH"),
        ("**Django**", "DATA_UPLOAD_MAX_MEMORY_SIZE"),
        ("**FastAPI**", "MAX_BODY_BYTES"),
    ],
)
def test_each_integration_snippet_shows_auth_an_allow_list_and_a_body_limit(
    framework: str, size_limit: str
) -> None:
    code = snippet(framework)
    assert "EVENTFWD_ALLOWED_PLATFORMS" in code, framework
    assert size_limit in code, framework
    assert re.search(r"authenticat|api[_ ]key|token", code, re.IGNORECASE), framework
    assert "id_namespace" in code, framework


def test_the_django_snippet_answers_malformed_json_without_a_500() -> None:
    code = snippet("**Django**")
    body = code[code.index("def track") :]
    assert "json.loads(request.body)" in body
    assert re.search(
        r"try:\s*\n\s*event = json.loads\(request.body\)\s*\n\s*except ValueError", body
    )


def test_the_flower_command_listens_on_loopback_unless_told() -> None:
    lines = [line for line in DOCS.splitlines() if line.startswith("celery -A worker flower")]
    assert lines
    for line in lines:
        assert "--address=127.0.0.1" in line, line


def test_the_security_page_exists_and_the_readme_links_it() -> None:
    page = (ROOT / "docs" / "security.md").read_text()
    assert "(docs/security.md)" in README
    for heading in ("## What eventfwd protects", "## What the deployer must do"):
        assert heading in page
    for topic in (
        "EVENTFWD_ALLOWED_PLATFORMS",
        "EVENTFWD_CLIENT_IDS",
        "dead export",
        "0600",
        "percent-encode",
        "Sentry",
        "64 KiB",
    ):
        assert topic in page, topic
