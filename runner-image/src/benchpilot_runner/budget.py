"""The run's budget: when the cost or tokens spent reach ``spec.budget``, no new case starts.

Spending counts every row the run has written (earlier attempts included: an error still cost
tokens) plus the rows of this process. Cases in flight when the budget is reached finish, so the
overshoot is bounded by what is in flight. Locally one tracker serves every shard; a pod holds
its shard's share of the run's budget (the budget divided by the number of shards).
"""

from __future__ import annotations

from .contract.outcomes import Reason
from .contract.types import Budget


class BudgetTracker:
    def __init__(self, budget: Budget, *, share: float = 1.0, spent_usd: float = 0.0, spent_tokens: int = 0):
        self.max_cost = budget.max_cost_usd * share if budget.max_cost_usd is not None else None
        self.max_tokens = int(budget.max_tokens * share) if budget.max_tokens is not None else None
        self.spent_usd, self.spent_tokens = spent_usd, spent_tokens
        self.share = share

    def add(self, row: dict | None) -> None:
        if not row:
            return
        self.spent_usd += float(row.get("cost_usd") or 0.0)
        self.spent_tokens += int(row.get("prompt_tokens") or 0) + int(row.get("completion_tokens") or 0)

    def exhausted(self) -> str | None:
        """Why no new case may start, or None."""
        scope = "the run's budget" if self.share == 1.0 else f"this shard's share ({self.share:.3g}) of the budget"
        if self.max_cost is not None and self.spent_usd >= self.max_cost:
            return f"{scope} is spent: ${self.spent_usd:.4f} of maxCostUSD ${self.max_cost:.4f} ({Reason.BUDGET_EXHAUSTED.value})"
        if self.max_tokens is not None and self.spent_tokens >= self.max_tokens:
            return f"{scope} is spent: {self.spent_tokens} of maxTokens {self.max_tokens} tokens ({Reason.BUDGET_EXHAUSTED.value})"
        return None
