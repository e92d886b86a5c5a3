from __future__ import annotations

import pytest

from worker.classify import Outcome, circuit_reason, classify


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (202, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (400, Outcome.PERMANENT),
        (413, Outcome.PERMANENT),
        (422, Outcome.PERMANENT),
        (409, Outcome.PERMANENT),
        (401, Outcome.PLATFORM),
        (403, Outcome.PLATFORM),
        (404, Outcome.PLATFORM),
        (429, Outcome.THROTTLED),
        (408, Outcome.TRANSIENT),
        (500, Outcome.TRANSIENT),
        (502, Outcome.TRANSIENT),
        (503, Outcome.TRANSIENT),
        (504, Outcome.TRANSIENT),
        (None, Outcome.TRANSIENT),
        (302, Outcome.TRANSIENT),
    ],
)
def test_classify_maps_each_status_to_its_action(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_circuit_reason_names_auth_and_not_found() -> None:
    assert circuit_reason(401) == "auth"
    assert circuit_reason(403) == "auth"
    assert circuit_reason(404) == "not_found"
