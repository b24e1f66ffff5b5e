"""Parse an untrusted document in a child process with hard OS limits.

A zip bomb, a pathological regex input or a giant PDF page must kill a throwaway process, never
the worker (which holds the embedding model, beats its heartbeat and would be requeued by
another worker's sweep while a frozen copy still runs). :func:`load_in_sandbox` runs
``app.ingest.sandbox`` in a fresh interpreter (:data:`LAUNCHER`) which, before it reads the
file, sets with ``resource.setrlimit``:

- ``RLIMIT_AS``: address space (``INGEST_MAX_MEMORY_MB``); allocations beyond it fail;
- ``RLIMIT_CPU``: CPU seconds (``INGEST_MAX_CPU_SECONDS``); the kernel sends SIGXCPU, then SIGKILL;
- ``RLIMIT_FSIZE``: the largest file it may write (``INGEST_MAX_OUTPUT_MB``), which bounds its
  JSON output and the OCR renderings of its children (pdftoppm and tesseract inherit every
  limit);
- ``PR_SET_PDEATHSIG``: it is killed when the worker dies (a SIGKILLed worker leaves no parse),
  and so is each OCR program it starts when it dies;

and it holds nothing worth stealing (:mod:`app.ingest.confine`): an allowlisted environment
without secrets, the ``nobody`` user when the worker is root (it reads a copy of the upload in
its own directory), and a seccomp filter that refuses it (and its children) any socket. The
OCR programs are looked up on the worker's PATH (:func:`app.ingest.ocr.find_programs`), since
``nobody`` may not search every directory on it;

and the parent kills the child's whole process group after ``INGEST_MAX_WALL_SECONDS``. The
child is a fresh interpreter (not a fork: the worker has threads and the ONNX runtime loaded),
costing ~0.6 s per document. Whatever ends the child, the parent turns it into a
:class:`LimitExceeded` or :class:`DocumentLoadError` whose reason names the limit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from app.ingest import confine, ocr
from app.ingest.limits import MB, IngestLimits, LimitExceeded, active_limits, use_limits
from app.ingest.models import DocumentLoadError, IngestError, LoadedDocument
from app.rag.chunking import Section

EXIT_MEMORY = 86  # the child caught MemoryError
EXIT_OUTPUT = 87  # the child could not write its output (RLIMIT_FSIZE: EFBIG)
CPU_GRACE_SECONDS = 5  # between SIGXCPU (soft limit) and SIGKILL (hard limit)
CHILD_MODULE = "app.ingest.sandbox"


def load_in_sandbox(
    path: Path, filename: str, limits: IngestLimits | None = None, *, force_ocr: bool = False
) -> LoadedDocument:
    """``app.ingest.load_document(path, filename, force_ocr=...)`` in a limited child process."""
    limits = limits or active_limits()
    confine.keep_environment_private()  # the child must not read our secrets from /proc
    with tempfile.TemporaryDirectory(prefix="flowchat-parse-") as tmp:
        home = Path(tmp)
        upload = home / f"upload{Path(filename).suffix.lower()}"
        shutil.copyfile(path, upload)  # the child reads its own copy, never the documents
        out = home / "out.json"
        request = {
            "path": str(upload),
            "filename": filename,
            "out": str(out),
            "parent": os.getpid(),
            "force_ocr": force_ocr,
            "ids": confine.sandbox_ids(),
            "programs": ocr.find_programs(),  # looked up by us: the child may not search PATH
            **asdict(limits),
        }
        proc = start_child([CHILD_MODULE, json.dumps(request)], home)
        try:
            _, stderr = proc.communicate(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise LimitExceeded(
                f"parsing took longer than {limits.wall_seconds} s and was stopped "
                "(INGEST_MAX_WALL_SECONDS)"
            ) from None
        finally:
            _kill_group(proc)  # leftovers (an OCR child) never outlive the parse
        return _outcome(proc.returncode, stderr, out, limits)


# The child's first statements, before it imports anything of the service (which takes seconds
# on a busy machine): die with the parent (PR_SET_PDEATHSIG, Linux) or leave at once if the
# parent (pid in the first argument) is already gone, then run the module named by the second
# argument as __main__ with the rest as its arguments.
LAUNCHER = (
    "import ctypes, os, runpy, signal, sys\n"
    "try:\n    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
    "except (OSError, AttributeError):\n    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n    sys.exit(1)\n"
    "sys.argv = sys.argv[2:]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def start_child(args: list[str], home: Path) -> subprocess.Popen:
    """``python -c LAUNCHER PID MODULE ARGS...`` with the allowlisted environment, in its own
    process group, ``home`` handed to the sandbox user (the child switches to it itself:
    :func:`enter_sandbox`)."""
    confine.hand_over(home, confine.sandbox_ids())
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(os.getpid()), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=confine.child_environment(home),
        cwd=home,
        start_new_session=True,  # its own process group: OCR children die with it
    )


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait()


def _outcome(code: int, stderr: bytes, out: Path, limits: IngestLimits) -> LoadedDocument:
    memory = f"the memory limit of {limits.memory_mb} MB (INGEST_MAX_MEMORY_MB)"
    if code == -signal.SIGXCPU:
        raise LimitExceeded(
            f"parsing used more than {limits.cpu_seconds} s of CPU time and was stopped "
            "(INGEST_MAX_CPU_SECONDS)"
        )
    if code == EXIT_MEMORY:
        raise LimitExceeded(f"parsing needed more than {memory}")
    if code == EXIT_OUTPUT or code == -signal.SIGXFSZ:
        raise LimitExceeded(
            f"the parsed text is larger than {limits.output_mb} MB (INGEST_MAX_OUTPUT_MB)"
        )
    if code < 0:  # a native parser (lxml, zlib) that fails to allocate may abort or crash
        name = signal.Signals(-code).name
        raise LimitExceeded(f"the parser was killed by {name}, most likely at {memory}")
    if code != 0:
        last = stderr.decode("utf-8", "replace").strip().splitlines()
        detail = last[-1][:300] if last else f"exit code {code}"
        raise DocumentLoadError(f"the parser failed: {detail}")
    try:
        result = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DocumentLoadError(f"the parser returned no readable result: {exc}") from exc
    if "error" in result:
        error_class = LimitExceeded if result.get("limit") else DocumentLoadError
        raise error_class(str(result["error"]))
    return LoadedDocument(
        title=result["title"],
        sections=[Section(**section) for section in result["sections"]],
    )


# --- the child ---------------------------------------------------------------------------------
def enter_sandbox(parent: int, ids: tuple[int, int] | None) -> bool:
    """What the child does before it opens the upload: import the parsers, become the sandbox
    user (``ids``, when started by root), die with its parent, lose the right to open sockets.
    Returns whether the socket filter is in force (not everywhere: see app.ingest.confine)."""
    confine.die_with_parent()  # a SIGKILLed worker takes its parse with it
    import app.ingest  # noqa: F401  (the parsers, read while the interpreter's files are readable)

    if ids is not None:
        confine.preload_codecs()
    confine.drop_to(ids)
    confine.die_with_parent()  # again: changing the user cleared it
    if os.getppid() != parent:  # the parent died before prctl took effect
        raise SystemExit(1)
    return confine.deny_sockets()


def _apply_limits(request: dict) -> None:
    memory = int(request["memory_mb"]) * MB
    cpu = int(request["cpu_seconds"])
    output = int(request["output_mb"]) * MB
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + CPU_GRACE_SECONDS))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)  # die at the soft CPU limit


def _child(argv: list[str]) -> int:
    request = json.loads(argv[0])
    ids = request.get("ids")
    enter_sandbox(int(request["parent"]), tuple(ids) if ids else None)
    _apply_limits(request)
    use_limits(IngestLimits(**{k: request[k] for k in IngestLimits.__dataclass_fields__}))
    if "programs" in request:
        ocr.use_programs(request["programs"])
    out = Path(request["out"])
    try:
        from app.ingest import load_document

        loaded = load_document(
            Path(request["path"]), request["filename"], force_ocr=bool(request.get("force_ocr"))
        )
        payload: dict = {
            "title": loaded.title,
            "sections": [
                {"text": s.text, "heading": s.heading, "page": s.page} for s in loaded.sections
            ],
        }
    except LimitExceeded as exc:
        payload = {"error": exc.reason, "limit": True}
    except IngestError as exc:
        payload = {"error": exc.reason}
    except MemoryError:
        return EXIT_MEMORY
    try:
        out.write_text(json.dumps(payload), encoding="utf-8")
    except MemoryError:
        return EXIT_MEMORY
    except OSError as exc:
        if exc.errno == errno.EFBIG:
            return EXIT_OUTPUT
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(_child(sys.argv[1:]))
