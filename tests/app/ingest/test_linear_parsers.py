"""The HTML and Markdown loaders are linear in their input.

Their old regexes rescanned long runs of spaces from every position (8,000 spaces: 1 s, 4x per
doubling) while holding the interpreter lock, which froze the worker's heartbeat. They are kept
here as oracles: the replacements give the same result on any short input (hypothesis), and on
hostile inputs doubling the size roughly doubles the CPU time (best of several runs, well under
the 4x of a quadratic; the figures themselves are in bench/ingest.py).
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from app.ingest.loaders.html import PARAGRAPH, collapse_line_breaks, parse_html, resolve_paragraphs
from app.ingest.loaders.markdown import atx_heading, parse_markdown

OLD_LINE_RUN = re.compile(r"[ \t]*(?:\n[ \t]*)+")
OLD_PARAGRAPH_RUN = re.compile(r"\s*\x1e[\s\x1e]*")
OLD_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")

whitespace_text = st.text(alphabet=[" ", "\t", "\n", "\r", "\u00a0", PARAGRAPH, "a", "b"])
heading_line = st.text(alphabet=[" ", "\t", "#", "a", "b"], max_size=20)


@given(whitespace_text)
def test_line_breaks_collapse_like_the_old_regex(text: str) -> None:
    assert collapse_line_breaks(text) == OLD_LINE_RUN.sub("\n", text)


@given(whitespace_text)
def test_paragraphs_resolve_like_the_old_regex(text: str) -> None:
    assert resolve_paragraphs(text) == OLD_PARAGRAPH_RUN.sub("\n\n", text)


@given(heading_line)
def test_atx_headings_parse_like_the_old_regex(line: str) -> None:
    match = OLD_ATX.match(line)
    expected = (len(match.group(1)), match.group(2) or "") if match else None
    assert atx_heading(line) == expected


def _best_time(parse: Callable[[], object], repeat: int, runs: int = 3) -> float:
    """Best CPU time of ``repeat`` parses over a few runs, without the garbage collector
    (other processes' load and a collection landing in one run are the noise)."""
    best = float("inf")
    gc.disable()
    try:
        for _ in range(runs):
            started = time.process_time()
            for _ in range(repeat):
                parse()
            best = min(best, time.process_time() - started)
    finally:
        gc.enable()
    return best


def _doubling_ratio(make: Callable[[int], Callable[[], object]], size: int) -> float:
    """CPU time at 2 x size over the time at size; a linear parser gives ~2, a quadratic 4.
    Fast parses are repeated until one measurement is long enough for the clock."""
    small, large = make(size), make(2 * size)
    repeat = 1
    while _best_time(small, repeat, runs=1) < 0.05:
        repeat *= 2
    return _best_time(large, repeat) / _best_time(small, repeat)


HOSTILE: dict[str, Callable[[int], Callable[[], object]]] = {
    "html spaces": lambda n: lambda: parse_html(f"<p>a{' ' * n}b</p>", "t"),
    "html spaces around breaks": lambda n: (
        lambda: parse_html(f"<div>{' ' * n}<p>a{' ' * n}<br>{' ' * n}b</p>{' ' * n}</div>", "t")
    ),
    "markdown heading spaces": lambda n: lambda: parse_markdown(f"# a{' ' * n}b #\n\nx", "t"),
    "markdown heading brackets": lambda n: lambda: parse_markdown("# " + "[" * n + "\n\nx", "t"),
}


@settings(max_examples=len(HOSTILE), deadline=None, derandomize=True)
@given(st.sampled_from(sorted(HOSTILE)))
def test_hostile_inputs_scale_linearly(name: str) -> None:
    ratio = _doubling_ratio(HOSTILE[name], 2_000_000)  # out of the caches; the old: days
    assert ratio < 3.0, f"{name}: doubling the input multiplied the time by {ratio:.2f}"
