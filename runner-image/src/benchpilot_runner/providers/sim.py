"""The ``sim`` provider: deterministic simulated models (no endpoint). Pure."""

from __future__ import annotations

from typing import Mapping

from ..contract.fields import SpecError, show
from ..contract.types import ModelSpec, SimModel

PRESETS = {  # name: accuracy, mean latency in seconds
    "oracle": SimModel(1.0, 0.05),
    "strong": SimModel(0.9, 0.08),
    "medium": SimModel(0.7, 0.08),
    "weak": SimModel(0.4, 0.05),
    "random": SimModel(0.1, 0.02),
}


class SimProvider:
    name = "sim"
    simulated = True

    def model(self, model_id: str, path: str, simulation: Mapping[str, SimModel]) -> ModelSpec:
        full = f"{self.name}/{model_id}"
        if full not in simulation and model_id not in PRESETS:
            raise SpecError(path, f"unknown simulated model {show(full)}; built-in: "
                                  f"{', '.join('sim/' + p for p in PRESETS)}, or define it under spec.simulation")
        return ModelSpec(name=full, endpoint=None, model=model_id, provider=self.name)

    def preset(self, model_id: str) -> SimModel:
        return PRESETS[model_id]


PROVIDER = SimProvider()
