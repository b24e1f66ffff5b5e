"""Token counts estimated from text, for the Flow emulator's ``usage`` (Flow bills by token).

No tokenizer of the gateway's models is available offline, so this approximates OpenAI's BPE
vocabularies: a word of up to six characters is one token (with its leading space), a longer
one one more token per six characters, each punctuation mark one token; a chat message costs 3
tokens of framing and the reply is primed with 3 more (OpenAI's counting recipe for the gpt-4o
family). That is about 4 characters per token on English prose, the published rule of thumb,
and unlike a word count it grows with code, paths, numbers and punctuation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

_PIECES = re.compile(r"\w+|[^\w\s]")
CHARS_PER_WORD_TOKEN = 6
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING_TOKENS = 3


def estimate_tokens(text: str) -> int:
    """Tokens of a piece of text (0 for empty text)."""
    total = 0
    for piece in _PIECES.findall(text):
        total += math.ceil(len(piece) / CHARS_PER_WORD_TOKEN) if piece[0].isalnum() else 1
    return total


def estimate_prompt_tokens(contents: Iterable[str]) -> int:
    """Tokens of a chat request: every message's text plus its framing, plus the priming."""
    return sum(TOKENS_PER_MESSAGE + estimate_tokens(c) for c in contents) + REPLY_PRIMING_TOKENS
