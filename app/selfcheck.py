"""Self-check of an installation: ``python -m app.selfcheck [--read-only-root]``.

What the tests exercise, checked where the service will run (the built image before it is
pushed, or the venv under ``make test``):

* every module of ``app`` imports;
* the embedding model loads and embeds (and ranks a related sentence above an unrelated one);
* the OCR programs are on PATH and work: ``pdftoppm`` renders a generated PDF, ``tesseract``
  reads the rendered page back;
* every loader of an allowed file type loads a small generated sample through the ingestion
  sandbox the worker uses, including an image-only PDF that needs OCR;
* with ``--read-only-root``: the root filesystem is read-only and the only writable places are
  the temp dir and the volumes (DOCUMENTS_PATH, VECTOR_STORE_PATH); every check above then ran
  writing nowhere else.

Samples are generated with the service's own dependencies only (no dev packages in the image).
Exit 0 when everything passes; otherwise exit 1 with one sentence per failure on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import app

PHRASE = "Restart the worker before noon"  # what every sample says (OCR reads it back)
OCR_WORDS = ("restart", "worker", "noon")
TOOL_TIMEOUT_SECONDS = 120
# pages of the generated PDFs, in points (a small page keeps OCR at ~1 s on a busy core)
PAGE_WIDTH, PAGE_HEIGHT = 360, 120


class CheckFailed(Exception):
    """One check failed; the message is the one sentence printed for it."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Path], None]


# --- generated samples ------------------------------------------------------------------------


def _pdf(objects: list[bytes]) -> bytes:
    """A PDF file of the given objects (1-based, object 1 is the catalog), with its xref."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<< /Length %d %s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def text_pdf(text: str = PHRASE) -> bytes:
    """A one-page PDF with ``text`` in Helvetica (extractable by pypdf, renderable by poppler)."""
    content = b"BT /F1 24 Tf 12 50 Td (%s) Tj ET" % text.encode("latin-1")
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % (PAGE_WIDTH, PAGE_HEIGHT)
    page += b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page,
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            _stream(content),
        ]
    )


def image_pdf(width: int, height: int, gray: bytes) -> bytes:
    """A one-page PDF whose only content is a grey image (no text layer: it needs OCR)."""
    image = _stream(
        zlib.compress(gray),
        b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
        b"/BitsPerComponent 8 /Filter /FlateDecode " % (width, height),
    )
    content = b"q %d 0 0 %d 0 0 cm /Im1 Do Q" % (PAGE_WIDTH, PAGE_HEIGHT)
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % (PAGE_WIDTH, PAGE_HEIGHT)
    page += b"/Resources << /XObject << /Im1 4 0 R >> >> /Contents 5 0 R >>"
    return _pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            page,
            image,
            _stream(content),
        ]
    )


def read_pgm(path: Path) -> tuple[int, int, bytes]:
    """Width, height and 8-bit pixels of a binary PGM (P5), as written by ``pdftoppm -gray``."""
    data = path.read_bytes()
    fields: list[bytes] = []
    pos = 0
    while len(fields) < 4:
        while data[pos : pos + 1].isspace():
            pos += 1
        if data[pos : pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    magic, width, height, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic != b"P5" or maxval != 255:
        raise CheckFailed(f"pdftoppm wrote an unexpected image format ({magic!r}, {maxval})")
    pixels = data[pos + 1 : pos + 1 + width * height]
    return width, height, pixels


def docx_sample(path: Path) -> None:
    from docx import Document

    document = Document()
    document.add_heading("Operations", level=1)
    document.add_paragraph(PHRASE)
    document.save(str(path))


TEXT_SAMPLES: dict[str, str] = {
    ".txt": f"{PHRASE}.\n",
    ".text": f"{PHRASE}.\n",
    ".md": f"# Operations\n\n{PHRASE}.\n",
    ".markdown": f"# Operations\n\n{PHRASE}.\n",
    ".html": f"<html><body><h1>Operations</h1><p>{PHRASE}.</p><script>x()</script></body></html>",
    ".htm": f"<html><body><h1>Operations</h1><p>{PHRASE}.</p></body></html>",
}


# --- checks -----------------------------------------------------------------------------------


def _tool(args: list[str], what: str) -> subprocess.CompletedProcess[bytes]:
    program = shutil.which(args[0])
    if program is None:
        raise CheckFailed(f"{args[0]} is not on PATH, so {what} is impossible")
    try:
        done = subprocess.run(
            [program, *args[1:]], capture_output=True, timeout=TOOL_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{args[0]} took over {TOOL_TIMEOUT_SECONDS} s {what}") from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = lines[-1] if lines else f"exit code {done.returncode}"
        raise CheckFailed(f"{args[0]} failed {what}: {detail}")
    return done


def check_imports(_: Path) -> None:
    failed = []
    for module in pkgutil.walk_packages(app.__path__, prefix="app."):
        if module.name == __name__ or module.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # any import failure is a finding
            failed.append(f"{module.name} ({type(exc).__name__}: {exc})")
    if failed:
        raise CheckFailed(f"{len(failed)} module(s) of app do not import: {'; '.join(failed)}")


def check_embedding(_: Path) -> None:
    import numpy as np

    from app.rag.embeddings import DIMENSIONS, Embedder, EmbeddingModelMissing

    try:
        embedder = Embedder()
    except EmbeddingModelMissing as exc:
        raise CheckFailed(f"the embedding model does not load: {exc}") from None
    vectors = embedder.embed([PHRASE, "How do I restart a worker?", "A recipe for banana bread"])
    if vectors.shape != (3, DIMENSIONS) or not np.allclose(np.linalg.norm(vectors, axis=1), 1):
        raise CheckFailed(f"the embedding model returned vectors of shape {vectors.shape}")
    related, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    if related <= unrelated:
        raise CheckFailed(
            f"the embedding model ranks an unrelated sentence ({unrelated:.2f}) above a related "
            f"one ({related:.2f})"
        )


def render_page(pdf: Path, workdir: Path) -> Path:
    """``pdftoppm`` of the first page as a grey PGM (what the OCR path renders, as PGM)."""
    prefix = workdir / "rendered"
    _tool(
        ["pdftoppm", "-r", "150", "-gray", "-singlefile", "-f", "1", "-l", "1", str(pdf),
         str(prefix)],
        "rendering a generated PDF",
    )  # fmt: skip
    image = prefix.with_suffix(".pgm")
    if not image.exists():
        raise CheckFailed("pdftoppm rendered no image of a generated PDF")
    return image


def check_ocr_tools(workdir: Path) -> None:
    pdf = workdir / "ocr-sample.pdf"
    pdf.write_bytes(text_pdf())
    image = render_page(pdf, workdir)
    _, _, pixels = read_pgm(image)
    if min(pixels) > 128:
        raise CheckFailed("pdftoppm rendered a blank page (are poppler's fonts installed?)")
    text = _tool(["tesseract", str(image), "stdout", "-l", "eng"], "reading a rendered page")
    read = text.stdout.decode("utf-8", "replace").lower()
    missing = [word for word in OCR_WORDS if word not in read]
    if missing:
        raise CheckFailed(f"tesseract did not read {missing} on a rendered page (read {read!r})")


def _samples(workdir: Path, extensions: list[str]) -> dict[str, Path]:
    samples: dict[str, Path] = {}
    for ext in extensions:
        path = workdir / f"sample{ext}"
        if ext in TEXT_SAMPLES:
            path.write_text(TEXT_SAMPLES[ext], encoding="utf-8")
        elif ext == ".pdf":
            path.write_bytes(text_pdf())
            scanned = workdir / "scanned.pdf"
            if shutil.which("pdftoppm"):
                width, height, gray = read_pgm(render_page(path, workdir))
                scanned.write_bytes(image_pdf(width, height, gray))
                samples["scanned .pdf"] = scanned
        elif ext == ".docx":
            docx_sample(path)
        else:
            raise CheckFailed(f"the self-check has no sample for the allowed type {ext}")
        samples[ext] = path
    return samples


def check_loaders(workdir: Path) -> None:
    from app.core.settings import get_settings
    from app.ingest import LOADERS, IngestError
    from app.ingest.sandbox import load_in_sandbox

    allowed = [e.lower() for e in get_settings().ALLOWED_EXTENSIONS]
    without_loader = [e for e in allowed if e not in LOADERS]
    if without_loader:
        raise CheckFailed(f"allowed file types have no loader: {', '.join(without_loader)}")
    failed = []
    for label, path in _samples(workdir, allowed).items():
        ext = path.suffix
        try:
            document = load_in_sandbox(path, f"sample{ext}")
        except IngestError as exc:
            failed.append(f"{label} ({exc.reason})")
            continue
        text = " ".join(s.text for s in document.sections).lower()
        if not all(word in text for word in OCR_WORDS):
            failed.append(f"{label} (loaded without the sample's text)")
    if failed:
        raise CheckFailed(f"loaders failed on generated samples: {'; '.join(failed)}")


def writable_places() -> list[Path]:
    """Where the service may write: the temp dir and the volumes (the documents volume, and the
    vector store's only when Chroma is embedded, i.e. CHROMA_URL is unset)."""
    from app.core.settings import get_settings

    settings = get_settings()
    places = [Path(tempfile.gettempdir()), Path(settings.DOCUMENTS_PATH)]
    if not settings.CHROMA_URL:
        places.append(Path(settings.VECTOR_STORE_PATH))
    return places


def _writable(directory: Path) -> bool:
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".selfcheck-"):
            return True
    except OSError:
        return False


def check_read_only_root(_: Path) -> None:
    if not os.statvfs("/").f_flag & os.ST_RDONLY:
        raise CheckFailed("the root filesystem is writable (run the container with --read-only)")
    allowed = writable_places()
    not_writable = [str(p) for p in allowed if not _writable(p)]
    if not_writable:
        raise CheckFailed(f"places the service writes to are not writable: {not_writable}")
    app_dir = Path(app.__file__).resolve().parent
    writable = [str(p) for p in (app_dir, Path.home(), Path("/")) if _writable(p)]
    if writable:
        raise CheckFailed(f"places outside the temp dir and volumes are writable: {writable}")


READ_ONLY_ROOT = Check("read-only root", check_read_only_root)
CHECKS = (
    Check("imports", check_imports),
    Check("embedding model", check_embedding),
    Check("OCR programs", check_ocr_tools),
    Check("loaders", check_loaders),
)


def run(read_only_root: bool = False, only: tuple[Check, ...] | None = None) -> list[str]:
    """Run every check (or ``only`` these); the failures, one sentence each (empty: passed)."""
    checks = only if only is not None else ((READ_ONLY_ROOT,) if read_only_root else ()) + CHECKS
    failures = []
    with tempfile.TemporaryDirectory(prefix="flowchat-selfcheck-") as tmp:
        for check in checks:
            workdir = Path(tmp) / check.name.replace(" ", "-")
            workdir.mkdir()
            try:
                check.run(workdir)
            except CheckFailed as exc:
                failures.append(f"{check.name}: {exc}")
            except Exception as exc:  # an unexpected error is a failure too, in one sentence
                failures.append(f"{check.name}: {type(exc).__name__}: {exc}")
    return failures


def run_one(name: str) -> None:
    """Run the check called ``name`` alone, printing and exiting like :func:`main`."""
    (check,) = [c for c in (READ_ONLY_ROOT, *CHECKS) if c.name == name]
    sys.exit(_report(run(only=(check,))))


def _report(failures: list[str]) -> int:
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        return 1
    print("self-check passed")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.selfcheck", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--read-only-root",
        action="store_true",
        help="also check that only the temp dir and the volumes are writable (container mode)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _report(run(read_only_root=args.read_only_root))


if __name__ == "__main__":
    sys.exit(main())
