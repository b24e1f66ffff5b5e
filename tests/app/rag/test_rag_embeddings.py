"""The embedding model gives the upstream all-MiniLM-L6-v2 vectors.

Reference values: the sentence-transformers model card of all-MiniLM-L6-v2 prints the cosine
similarities of these three sentences (0.6660, 0.1046, 0.1411). The second reference is an
independent numpy implementation of the BERT forward pass over the upstream safetensors weights,
so the ONNX graph that model_setup assembles is checked tensor by tensor, not only on 3 numbers.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.rag.embeddings import DIMENSIONS, Embedder, get_embedder
from app.rag.model_setup import MODEL_DIR, ModelSetupError, _upstream_dir, setup
from app.rag.safetensors_reader import read_safetensors

CARD_SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]
CARD_SIMILARITIES = {(0, 1): 0.6660, (0, 2): 0.1046, (1, 2): 0.1411}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return get_embedder()


def test_vectors_match_the_model_card(embedder: Embedder) -> None:
    vectors = embedder.embed(CARD_SENTENCES)
    assert vectors.shape == (3, DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sims = vectors @ vectors.T
    for (i, j), expected in CARD_SIMILARITIES.items():
        assert sims[i, j] == pytest.approx(expected, abs=5e-4)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-12) * w + b


def _reference_bert(ids: list[int]) -> np.ndarray:
    """BERT forward pass of the upstream weights in numpy (float64), then mean pooling."""
    from math import erf, sqrt

    t = {
        k.removeprefix("bert."): v.astype(np.float64)
        for k, v in read_safetensors(_upstream_dir() / "model.safetensors").items()
    }
    n = len(ids)
    x = (
        t["embeddings.word_embeddings.weight"][ids]
        + t["embeddings.position_embeddings.weight"][:n]
        + t["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
    gelu = np.vectorize(lambda v: 0.5 * v * (1.0 + erf(v / sqrt(2.0))))
    heads, size = 12, 32
    for layer in range(6):
        p = f"encoder.layer.{layer}."

        def lin(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return v @ t[p + name + ".weight"].T + t[p + name + ".bias"]

        q = lin(x, "attention.self.query").reshape(n, heads, size).transpose(1, 0, 2)
        k = lin(x, "attention.self.key").reshape(n, heads, size).transpose(1, 0, 2)
        v = lin(x, "attention.self.value").reshape(n, heads, size).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(size)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        attn = attn.transpose(1, 0, 2).reshape(n, heads * size)
        x = _layer_norm(
            lin(attn, "attention.output.dense") + x,
            t[p + "attention.output.LayerNorm.weight"],
            t[p + "attention.output.LayerNorm.bias"],
        )
        hidden = gelu(lin(x, "intermediate.dense"))
        x = _layer_norm(
            lin(hidden, "output.dense") + x,
            t[p + "output.LayerNorm.weight"],
            t[p + "output.LayerNorm.bias"],
        )
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_vectors_match_an_independent_reference_forward_pass(embedder: Embedder) -> None:
    text = "How do I restart the worker deployment?"
    ids = embedder.tokenizer.encode(text).ids
    reference = _reference_bert(ids)
    ours = embedder.embed([text])[0]
    assert float(ours @ reference) > 0.99999
    assert np.abs(ours - reference).max() < 1e-4


def test_padding_does_not_change_vectors(embedder: Embedder) -> None:
    short, long = "restart the worker", "rotate the Flow credentials " * 20
    alone = embedder.embed([short])[0]
    batched = embedder.embed([short, long])[0]  # padded to the long text's length
    assert np.abs(alone - batched).max() < 1e-5


def test_same_vectors_as_chromas_stock_embedding_function(embedder: Embedder) -> None:
    from chromadb.utils.embedding_functions import DefaultEmbeddingFunction

    stock = np.array(DefaultEmbeddingFunction()(CARD_SENTENCES))
    assert np.abs(stock - embedder.embed(CARD_SENTENCES)).max() < 1e-4


def test_setup_refuses_weights_with_the_wrong_checksum(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("app.rag.model_setup.UPSTREAM_SAFETENSORS_SHA256", "0" * 64)
    with pytest.raises(ModelSetupError, match="not the upstream"):
        setup(tmp_path / "model")
    assert not (tmp_path / "model" / "model.onnx").exists()


def test_setup_is_idempotent() -> None:
    before = (MODEL_DIR / "model.onnx").stat().st_mtime_ns
    setup()
    assert (MODEL_DIR / "model.onnx").stat().st_mtime_ns == before


def test_missing_model_is_a_clear_error(tmp_path) -> None:
    from app.rag.embeddings import EmbeddingModelMissing

    with pytest.raises(EmbeddingModelMissing, match="model_setup"):
        Embedder(tmp_path)


def test_one_intra_op_thread_gives_the_same_vectors(embedder: Embedder) -> None:
    """Chat workers embed on the calling thread (app.worker.threads): same model, same vectors."""
    single = Embedder(intra_op_threads=1)
    assert single.session.get_session_options().intra_op_num_threads == 1
    texts = ["How do I restart the worker?", "Rotate the Flow credentials"]
    assert np.allclose(single.embed(texts), embedder.embed(texts), atol=1e-5)


def test_a_repeated_question_is_served_from_the_bounded_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.rag import embeddings

    embedder = Embedder()
    runs = []
    real_run = embedder.session.run
    monkeypatch.setattr(
        embedder.session, "run", lambda *a, **k: runs.append(1) or real_run(*a, **k)
    )
    monkeypatch.setattr(embeddings, "QUERY_CACHE_SIZE", 2)

    first = embedder.embed_query(CARD_SENTENCES[0])
    assert np.allclose(first, embedder.embed([CARD_SENTENCES[0]])[0], atol=1e-6)
    assert len(runs) == 2
    first.append(0.0)  # a caller's copy: the cached vector is not changed by it
    assert embedder.embed_query(CARD_SENTENCES[0]) == first[:-1]
    assert len(runs) == 2  # the same words: no model run

    embedder.embed_query(CARD_SENTENCES[1])
    embedder.embed_query(CARD_SENTENCES[2])  # the cache holds 2: the least recent one goes
    assert len(runs) == 4
    embedder.embed_query(CARD_SENTENCES[2])
    embedder.embed_query(CARD_SENTENCES[1])
    assert len(runs) == 4
    embedder.embed_query(CARD_SENTENCES[0])
    assert len(runs) == 5
