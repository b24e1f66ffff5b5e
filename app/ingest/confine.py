"""What the parsing child may hold and do: no secrets, nobody's files, no sockets, no orphans.

A parser bug (poppler, tesseract, libxml2, zlib) must not turn an uploaded file into a reader of
the service's credentials or a writer to its data stores. :mod:`app.ingest.sandbox` starts the
child with these, in this order:

- **environment**: only the names in :data:`ENV_ALLOWLIST` are passed on (``FLOW_AGENT_SECRET``,
  ``ADMIN_TOKEN``, ``REDIS_PASSWORD``, ``CHROMA_TOKEN``, ``API_KEYS`` and everything else stay
  behind); ``HOME`` and ``TMPDIR`` are the parse's own temporary directory;
- **user**: started by root, the child becomes :data:`SANDBOX_USER` (``nobody``, no
  supplementary groups) before it opens the upload, and for good; it reads a copy of the upload
  in its own directory. A non-root parent (a pod, `make run` as a normal user) cannot switch
  and the child keeps its user;
- **the parent's secrets**: the worker that starts the child is non-dumpable
  (:func:`keep_environment_private`), so a child of the same user cannot read them from
  ``/proc/<worker>/environ``;
- **death**: the child and each program it starts (``pdftoppm``, ``tesseract``) get
  ``PR_SET_PDEATHSIG`` = SIGKILL: when their parent dies, they die, whoever killed it;
- **sockets**: a seccomp filter (libseccomp, through ``pyseccomp``) makes ``socket()`` and
  ``io_uring_setup()`` fail with EACCES for the child and everything it starts (filters are
  inherited and survive exec); where the kernel or libseccomp does not allow it (not Linux),
  :func:`deny_sockets` returns False and the child runs without it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pwd
import signal
from pathlib import Path

import app

try:  # loaded now, while the interpreter's files are readable (see drop_to)
    import pyseccomp
except Exception:  # no libseccomp on this system (not Linux): the child runs without the filter
    pyseccomp = None

# what a parser and the OCR programs need from the environment; nothing secret
ENV_ALLOWLIST = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TESSDATA_PREFIX")
# the child's own variables: one thread per native library (the limits count the whole process)
CHILD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SANDBOX_USER = "nobody"
NOBODY_ID = 65534  # Debian's nobody/nogroup, used when the account is missing
APP_ROOT = Path(app.__file__).resolve().parent.parent  # what `python -m app...` must import
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
DENIED_SYSCALLS = ("socket", "io_uring_setup")  # io_uring could open sockets without socket()


def child_environment(home: Path) -> dict[str, str]:
    """The child's whole environment: the allowlist, its own directory, the app's import path."""
    env = {name: os.environ[name] for name in ENV_ALLOWLIST if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env.update(CHILD_ENV)
    env.update({"HOME": str(home), "TMPDIR": str(home), "PYTHONPATH": str(APP_ROOT)})
    return env


def sandbox_ids() -> tuple[int, int] | None:
    """(uid, gid) the child runs as when this process is root; None when it cannot switch."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SANDBOX_USER)
    except KeyError:
        return NOBODY_ID, NOBODY_ID
    return entry.pw_uid, entry.pw_gid


def hand_over(directory: Path, ids: tuple[int, int] | None) -> None:
    """Give the parse's directory (and the copy of the upload in it) to the child's user."""
    if ids is None:
        return
    for path in (directory, *directory.iterdir()):
        os.chown(path, *ids)


def preload_codecs() -> None:
    """Import every text codec now: Python imports them on first use (a document's declared
    charset), which fails once the interpreter's own files are out of the sandbox user's reach."""
    import encodings
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(encodings.__path__):
        with contextlib.suppress(ImportError, LookupError):  # mbcs/oem: Windows only
            importlib.import_module(f"encodings.{module.name}")


def drop_to(ids: tuple[int, int] | None) -> None:
    """Become the sandbox user for good (real, effective and saved ids; no groups). Called by
    the child after its interpreter started and the parsers were imported, so the interpreter
    may live where that user cannot read (pyenv under /root); the parse itself runs as it."""
    if ids is None:
        return
    uid, gid = ids
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)  # clears PR_SET_PDEATHSIG: set it again afterwards


def keep_environment_private() -> None:
    """Make this process non-dumpable (PR_SET_DUMPABLE 0): its /proc/<pid>/environ and memory
    become root's, so a parsing child that keeps this process's user (a pod, `make run` as a
    normal user) cannot read the secrets in its environment there. Inherited by forks, reset
    by exec (the child itself stays dumpable). No-op off Linux."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0)


def die_with_parent() -> None:
    """SIGKILL this process when its parent dies (Linux; a no-op elsewhere). Safe as a
    ``preexec_fn`` of a single-threaded process such as the parsing child."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def deny_sockets() -> bool:
    """Load the seccomp filter that refuses every new socket; True when it is in force."""
    if pyseccomp is None:
        return False
    try:
        syscall_filter = pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
        for name in DENIED_SYSCALLS:
            syscall_filter.add_rule(pyseccomp.ERRNO(errno.EACCES), name)
        syscall_filter.load()  # sets no_new_privs first: no setuid program regains anything
    except Exception:  # no seccomp in this kernel, a syscall libseccomp does not know
        return False
    return True
