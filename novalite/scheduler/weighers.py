"""Host weighers. Weights are normalized to 0..1 across candidates, then multiplied."""

from __future__ import annotations

from novalite.scheduler.host_state import HostState, RequestSpec


class Weigher:
    """Gives each candidate host a raw weight; higher is preferred (with a positive multiplier)."""

    name = ""
    option = ""

    def __init__(self, options: dict) -> None:  # type: ignore[type-arg]
        self.multiplier = float(options.get(self.option, 1.0))

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        raise NotImplementedError


class RAMWeigher(Weigher):
    """Prefers hosts with more free RAM (spreading); a negative multiplier packs."""

    name = "RAMWeigher"
    option = "ram_weight_multiplier"

    def weigh(self, host: HostState, spec: RequestSpec) -> float:
        return host.free_ram_mb


BUILTIN = {cls.name: cls for cls in (RAMWeigher,)}


def normalize(values: list[float]) -> list[float]:
    """Nova's normalization: map min..max onto 0..1 (all equal -> all 0)."""
    if not values:
        return []
    lo, hi = min(values), max(values)
    if hi == lo:
        return [0.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]
