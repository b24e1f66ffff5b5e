"""The chat package is the contract between API and worker: it imports neither of them."""

from __future__ import annotations

import subprocess
import sys

from app.core.settings import REPO_ROOT


def test_the_chat_package_imports_neither_the_api_nor_the_worker() -> None:
    code = (
        "import sys\n"
        "import app.chat.conversations, app.chat.feedback, app.chat.jobs\n"
        "import app.chat.results, app.chat.stream\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('app.api', 'app.worker')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"app.chat imported {result.stdout.strip()}"
