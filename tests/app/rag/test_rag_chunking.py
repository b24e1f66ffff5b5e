from __future__ import annotations

from itertools import pairwise

import pytest

from app.rag.chunking import Section, chunk_sections


def _paragraphs(n: int, words: int = 30) -> str:
    return "\n\n".join(
        f"Paragraph {i} " + " ".join(f"w{i}x{j}" for j in range(words)) for i in range(n)
    )


def test_chunks_respect_size_and_keep_section_metadata() -> None:
    sections = [
        Section(_paragraphs(8), heading="Runbooks > Restart Worker"),
        Section("tail", page=3),
    ]
    chunks = chunk_sections(sections, chunk_size=400, overlap=60)
    assert all(len(c.text) <= 400 for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[-1].text == "tail" and chunks[-1].page == 3 and chunks[-1].heading is None
    assert {c.heading for c in chunks[:-1]} == {"Runbooks > Restart Worker"}


def test_every_word_survives_in_order() -> None:
    text = _paragraphs(12, words=25)
    chunks = chunk_sections([Section(text)], chunk_size=300, overlap=0)
    joined = " ".join(c.text for c in chunks).split()
    assert joined == text.split()


def test_overlap_carries_the_end_of_the_previous_chunk() -> None:
    chunks = chunk_sections([Section(_paragraphs(6))], chunk_size=300, overlap=80)
    assert len(chunks) > 2
    for previous, current in pairwise(chunks):
        head = current.text.split()[0]
        assert head in previous.text.split()[-15:]


def test_sections_are_never_mixed() -> None:
    chunks = chunk_sections([Section("alpha " * 10, "A"), Section("beta " * 10, "B")], 1000, 100)
    assert len(chunks) == 2
    assert "beta" not in chunks[0].text and "alpha" not in chunks[1].text


def test_very_long_words_and_sentences_are_cut() -> None:
    chunks = chunk_sections([Section("x" * 2500 + ". Short sentence.")], chunk_size=500, overlap=50)
    assert all(len(c.text) <= 500 for c in chunks)
    assert "Short sentence." in chunks[-1].text


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (100, 100), (100, -1)])
def test_bad_parameters_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_sections([Section("text")], size, overlap)
