"""`learned`: a logistic regression on prompt features predicts whether the small tier will solve
the task; below the calibrated threshold the task goes to the large tier.

The model file comes from `routerllm calibrate` (router.learned_model_path); the comparison can
also pass a model trained on other tasks (cross-validation). See routing/calibration.py.
"""

from __future__ import annotations

from routerllm.backends.base import GenerationRequest
from routerllm.evaluation.examples import detect_entry_point
from routerllm.exceptions import RoutingError
from routerllm.routing.base import RoutedAnswer, RouteDecision, Strategy
from routerllm.routing.calibration import LearnedRouterModel


class LearnedStrategy(Strategy):
    name = "learned"
    description = "logistic regression on prompt features, threshold calibrated to a share of large calls"

    def __init__(self, tiers, options, sandbox=None, model: LearnedRouterModel | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(tiers, options, sandbox)
        if model is None:
            if not options.learned_model_path:
                raise RoutingError(
                    "the 'learned' strategy needs a trained router model",
                    fix="run `routerllm calibrate --config ... --target-large-share 0.5 --output router.json` "
                    "and set router.learned_model_path: router.json",
                )
            model = LearnedRouterModel.load(options.learned_model_path)
        self.model = model

    def answer(self, request: GenerationRequest, entry_point: str | None = None) -> RoutedAnswer:
        entry_point = entry_point or detect_entry_point(request.prompt)
        score = self.model.score(request.prompt, entry_point)
        go_large = self.model.goes_large(score)
        tier = self.tiers.large if go_large else self.small_tier
        calls: dict[str, int] = {}
        attempts: list[dict] = []
        generation = self.call(tier, request, calls, attempts)
        relation = "<" if go_large else ">="
        reason = (f"predicted small-tier success {score:.3f} {relation} threshold {self.model.threshold:.3f} "
                  f"(calibrated to {self.model.target_large_share:.0%} large calls)")
        details = {"score": score, "threshold": self.model.threshold,
                   "target_large_share": self.model.target_large_share}
        return RoutedAnswer(generation, RouteDecision(self.name, tier[0], reason, False, details), calls, attempts)
