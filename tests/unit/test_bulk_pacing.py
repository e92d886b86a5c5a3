"""Pacing of bulk replays and holding Ctrl-C back while a page is in flight."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from eventfwd.ops.bulk import Pacer, held_interrupts


def test_pages_are_as_big_as_one_second_at_the_rate() -> None:
    assert Pacer(0).page_size() == 500
    assert Pacer(30).page_size() == 30
    assert Pacer(0.2).page_size() == 1
    assert Pacer(10_000).page_size() == 500


def test_a_pacer_without_a_rate_never_sleeps() -> None:
    slept: list[float] = []
    pacer = Pacer(0, sleep=slept.append)
    for _ in range(5):
        pacer.wait(500)
    assert slept == []


def test_a_pacer_spaces_pages_by_their_size_over_the_rate() -> None:
    slept: list[float] = []
    pacer = Pacer(100, sleep=slept.append)  # a sleep that takes no time
    pacer.wait(100)  # the first page goes at once
    pacer.wait(50)  # one second after it
    pacer.wait(100)  # half a second after that
    assert [round(s, 1) for s in slept] == [1.0, 1.5]


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Python's own SIGINT handler for the test, whatever the suite inherited: started with
    `nohup` or `&`, a shell hands SIGINT down ignored, and Python then installs no handler."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, inherited)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_ctrl_c_inside_the_block_is_raised_after_it() -> None:
    done = []
    with pytest.raises(KeyboardInterrupt), held_interrupts():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the page finished")
    assert done == ["the page finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
