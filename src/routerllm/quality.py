"""Placement quality check: did quantization or offload change the model's answers?

A *reference* (an unquantized single-device load, or a baseline JSON file saved from one) gives,
for a fixed set of code prompts, its greedy continuation and, at each position of it, its
log-probabilities (teacher-forced). A *test* load (4-bit, int8, offloaded, ...) is then measured on
the same prompt token ids:

- token agreement: the share of the reference's greedy continuation tokens the test's own greedy
  continuation reproduces at the same position (1.0 = identical outputs);
- mean KL(ref || test) per token, teacher-forced over the reference's continuation.

The baseline file keeps each position's top-`k` reference log-probabilities (default 64), not the
whole vocabulary (Gemma 3 has 262144 tokens). KL is computed on the distribution coarsened to those
`k` tokens plus one bucket holding the rest of the mass, for a live reference and a file alike.
That is a lower bound of the full KL (data-processing inequality) and equals it to within the
rest-bucket's mass; two loads that compute the same logits give exactly 0.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routerllm.exceptions import RouterLLMError

if TYPE_CHECKING:
    from routerllm.manager import LargeModelManager

logger = logging.getLogger(__name__)

BASELINE_FORMAT = "routerllm-quality-baseline/1"
DEFAULT_TOP_K = 64  # reference log-probs kept per position
DEFAULT_NEW_TOKENS = 24  # greedy continuation length compared per prompt

# Short, unambiguous function stubs: a model that works answers them the same way every time.
DEFAULT_PROMPTS: list[str] = [
    'def add(a, b):\n    """Return the sum of a and b."""\n',
    'def is_even(n):\n    """Return True when the integer n is even."""\n',
    'def reverse_string(s):\n    """Return the string s reversed."""\n',
    'def factorial(n):\n    """Return n! for an integer n >= 0."""\n',
    'def max_of_list(xs):\n    """Return the largest element of the non-empty list xs."""\n',
    'def count_vowels(s):\n    """Return how many vowels (a, e, i, o, u) the string s contains."""\n',
]


@dataclass
class PromptReference:
    prompt: str
    prompt_ids: list[int]
    continuation_ids: list[int]
    text: str
    top_ids: list[list[int]]  # per continuation position: the reference's top-k token ids
    top_logprobs: list[list[float]]  # ... and their log-probabilities


@dataclass
class Baseline:
    label: str  # what produced it, e.g. "gemma3_270m bfloat16 on cpu, unquantized"
    model_id: str
    top_k: int
    max_new_tokens: int
    prompts: list[PromptReference]
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    format: str = BASELINE_FORMAT

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Baseline":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RouterLLMError(f"cannot read quality baseline {path}: {exc}",
                                 fix="pass --baseline a file written by --save-baseline") from None
        if data.get("format") != BASELINE_FORMAT:
            raise RouterLLMError(f"{path} is not a routerllm quality baseline (format {data.get('format')!r})",
                                 fix="write one with `routerllm validate --save-baseline FILE`")
        data["prompts"] = [PromptReference(**p) for p in data["prompts"]]
        return cls(**data)


@dataclass
class PromptQuality:
    prompt: str
    agreement: float
    mean_kl: float
    reference_text: str
    test_text: str


@dataclass
class QualityResult:
    reference: str
    token_agreement: float  # reference tokens reproduced at the same position, over all prompts
    mean_kl: float  # nats per token, teacher-forced over the reference continuation
    prompts: list[PromptQuality]

    @property
    def exact(self) -> bool:
        return self.token_agreement == 1.0 and self.mean_kl < 1e-6

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exact": self.exact}


@dataclass(frozen=True)
class QualityThresholds:
    """Pass criteria. Same dtype, no quantization: placement must not change anything."""

    min_token_agreement: float
    max_mean_kl: float

    @classmethod
    def for_quantization(cls, quantization: str) -> "QualityThresholds":
        if quantization in ("none", "", None):
            return cls(min_token_agreement=1.0, max_mean_kl=1e-4)
        # 4/8-bit: greedy outputs may fork after a near-tie, and everything after a fork counts
        # as disagreement; a broken load (wrong map, bad kernel) scores near 0 and KL of several nats.
        return cls(min_token_agreement=0.5, max_mean_kl=0.5)

    def check(self, result: QualityResult) -> tuple[bool, str]:
        ok = result.token_agreement >= self.min_token_agreement and result.mean_kl <= self.max_mean_kl
        msg = (f"token agreement {result.token_agreement:.3f} (need >= {self.min_token_agreement}), "
               f"mean KL {result.mean_kl:.4f} nats/token (need <= {self.max_mean_kl}) vs {result.reference}")
        return ok, msg


# --- computation ---------------------------------------------------------------------------------


def _greedy(model, ids, device, max_new_tokens: int, pad_id: int) -> list[int]:
    import torch

    inp = torch.tensor([ids], dtype=torch.long, device=device)
    with torch.inference_mode():
        out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=max_new_tokens,
                             do_sample=False, temperature=None, top_p=None, top_k=None, pad_token_id=pad_id)
    return out[0, len(ids):].tolist()


def _teacher_forced_logprobs(model, prompt_ids: list[int], cont_ids: list[int], device):
    """log-softmax (float32) at the positions that predict each continuation token: [len(cont), vocab]."""
    import torch

    if not cont_ids:
        return torch.zeros((0, 1))
    inp = torch.tensor([prompt_ids + cont_ids], dtype=torch.long, device=device)
    with torch.inference_mode():
        logits = model(input_ids=inp, attention_mask=torch.ones_like(inp)).logits
    start = len(prompt_ids) - 1
    return torch.log_softmax(logits[0, start:start + len(cont_ids)].float().cpu(), dim=-1)


def make_baseline(model, tokenizer, *, device=None, prompts: list[str] | None = None, label: str = "",
                  model_id: str = "", max_new_tokens: int = DEFAULT_NEW_TOKENS, top_k: int = DEFAULT_TOP_K) -> Baseline:
    """Greedy continuations and top-k teacher-forced log-probs of a reference model."""
    import torch

    device = device or torch.device("cpu")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    refs = []
    for prompt in prompts or DEFAULT_PROMPTS:
        ids = tokenizer(prompt)["input_ids"]
        cont = _greedy(model, ids, device, max_new_tokens, pad)
        logp = _teacher_forced_logprobs(model, ids, cont, device)
        k = min(top_k, logp.shape[-1])
        top = torch.topk(logp, k, dim=-1) if len(cont) else None
        refs.append(PromptReference(
            prompt=prompt, prompt_ids=ids, continuation_ids=cont,
            text=tokenizer.decode(cont, skip_special_tokens=True),
            top_ids=top.indices.tolist() if top is not None else [],
            top_logprobs=[[round(v, 6) for v in row] for row in top.values.tolist()] if top is not None else [],
        ))
    return Baseline(label=label, model_id=model_id, top_k=top_k, max_new_tokens=max_new_tokens, prompts=refs)


def coarse_kl(ref_top_ids: list[int], ref_top_logprobs: list[float], test_logprobs) -> float:
    """KL(ref || test) on the top-k tokens of ref plus one bucket for the remaining mass."""
    import torch

    p_log = torch.tensor(ref_top_logprobs, dtype=torch.float64)
    q_log = test_logprobs[torch.tensor(ref_top_ids)].double()
    p = p_log.exp()
    kl = float((p * (p_log - q_log)).sum())
    rest_p = max(0.0, 1.0 - float(p.sum()))
    rest_q = max(1e-12, 1.0 - float(q_log.exp().sum()))
    if rest_p > 1e-9:
        kl += rest_p * (math.log(rest_p) - math.log(rest_q))
    return max(kl, 0.0)


def compare(model, tokenizer, baseline: Baseline, *, device=None) -> QualityResult:
    """Measure a test model against a baseline (same prompt token ids)."""
    import torch

    device = device or torch.device("cpu")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    per_prompt: list[PromptQuality] = []
    matched = total = 0
    kls: list[float] = []
    for ref in baseline.prompts:
        test_cont = _greedy(model, ref.prompt_ids, device, baseline.max_new_tokens, pad)
        n = len(ref.continuation_ids)
        same = sum(1 for a, b in zip(ref.continuation_ids, test_cont) if a == b)
        logq = _teacher_forced_logprobs(model, ref.prompt_ids, ref.continuation_ids, device)
        prompt_kls = [coarse_kl(ids, lps, logq[i]) for i, (ids, lps) in enumerate(zip(ref.top_ids, ref.top_logprobs))]
        kls.extend(prompt_kls)
        matched += same
        total += n
        per_prompt.append(PromptQuality(
            prompt=ref.prompt, agreement=same / n if n else 1.0,
            mean_kl=sum(prompt_kls) / len(prompt_kls) if prompt_kls else 0.0,
            reference_text=ref.text, test_text=tokenizer.decode(test_cont, skip_special_tokens=True),
        ))
    return QualityResult(
        reference=baseline.label or baseline.model_id,
        token_agreement=matched / total if total else 1.0,
        mean_kl=sum(kls) / len(kls) if kls else 0.0,
        prompts=per_prompt,
    )


# --- manager helpers -----------------------------------------------------------------------------


def describe_load(manager: "LargeModelManager") -> str:
    info = manager.load_info
    places = sorted({str(v) for v in info.device_map.values()}) if info else []
    return f"{manager.config.name} {info.dtype if info else '?'} {info.quantization if info else '?'} on {'+'.join(places)}"


def baseline_from_manager(manager: "LargeModelManager", **kwargs: Any) -> Baseline:
    manager.load(progress=False)
    return make_baseline(manager.model, manager.tokenizer, device=manager.input_device(),
                         label=describe_load(manager), model_id=manager.config.model_id or "", **kwargs)


def compare_manager(manager: "LargeModelManager", baseline: Baseline) -> QualityResult:
    manager.load(progress=False)
    return compare(manager.model, manager.tokenizer, baseline, device=manager.input_device())
