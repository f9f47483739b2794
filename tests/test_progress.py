"""Progress people can read (rag/core/progress.py): a line at least every 10% or 30 s when stderr is
not a terminal, each with the rate and the time left; and `rag index` prints them for real."""
from __future__ import annotations

import io
import re

from rag.core.progress import ProgressLines, ProgressMeter
from tests.conftest import clean_env, rag_cli, write_notes


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_the_meter_gives_rate_and_time_left_of_the_current_stage():
    clock = Clock()
    meter = ProgressMeter(clock)
    meter.update("embedding passages", 0, 1000)
    assert meter.rate() is None and meter.text() == "embedding passages: 0/1,000 (0%)"
    clock.t += 10
    meter.update("embedding passages", 200, 1000)
    assert meter.rate() == 20 and meter.time_left() == 40
    assert meter.text(" passages/s") == "embedding passages: 200/1,000 (20%), 20.0 passages/s, about 40 s left"
    clock.t += 5
    meter.update("writing index", 0, 1)  # a new stage starts its own clock
    assert meter.rate() is None


def test_without_a_terminal_a_line_comes_every_tenth_or_every_30_seconds():
    clock, out = Clock(), io.StringIO()
    lines = ProgressLines(out, tty=False, clock=clock)
    for done in range(0, 1001, 32):  # batches of 32 passages, 1 s each
        lines("embedding passages", done, 1000)
        clock.t += 1
    lines("embedding passages", 1000, 1000)
    printed = out.getvalue().splitlines()
    assert printed[0] == "embedding passages: 0/1,000 (0%)" and printed[-1].startswith("embedding passages: 1,000/1,000")
    assert 10 <= len(printed) <= 13, printed
    assert all("passages/s" in line and "left" in line for line in printed[1:-1])
    # Slow batches: a line every 30 s even when 10% takes longer.
    clock, out = Clock(), io.StringIO()
    lines = ProgressLines(out, tty=False, clock=clock)
    for done in range(0, 40):
        lines("embedding passages", done, 10_000)
        clock.t += 16
    assert len(out.getvalue().splitlines()) == 20  # at 0, 32, 64, ... s: never 30 s without one


def test_on_a_terminal_one_line_is_rewritten():
    out = io.StringIO()
    lines = ProgressLines(out, tty=True, clock=Clock())
    for done in (0, 5, 10):
        lines("reading notes", done, 10)
    assert out.getvalue().count("\r") == 3 and out.getvalue().endswith("\n")


def test_rag_index_prints_progress_lines_into_a_log(tmp_path):
    notes = {f"n{i:03d}.md": f"# Note {i}\n\nPassage {i}: cache line {i} holds {i * 7} bytes of state for worker {i}.\n"
             for i in range(300)}
    corpus = write_notes(tmp_path / "corpus", notes)
    run = rag_cli("index", "--corpus", str(corpus), "--index", str(tmp_path / "index"), env=clean_env(), timeout=600)
    assert run.returncode == 0, run.stderr
    embedding = [line for line in run.stderr.splitlines() if line.startswith("embedding passages")]
    assert "\r" not in run.stderr
    assert len(embedding) >= 9, embedding
    middle = [line for line in embedding if re.search(r"passages/s, about .+ left$", line)]
    assert len(middle) >= 7, embedding
    assert embedding[-1].startswith("embedding passages: 300/300 (100%)")


def test_the_web_ui_reindex_status_shows_the_rate_and_time_left():
    from rag.notes import ReindexStatus

    status = ReindexStatus(True, "embedding passages", 200, 1000, "a note changed", 0.0, None, None, None, 0, False,
                           (), "embedding passages: 200/1,000 (20%), 20.0 passages/s, about 40 s left")
    assert status.progress_text.endswith("about 40 s left")
    plain = ReindexStatus(True, "embedding passages", 0, 1000, "a note changed", 0.0, None, None, None, 0, False)
    assert plain.progress_text == "embedding passages: 0/1000"
