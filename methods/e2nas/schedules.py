"""gamma schedules of E2NAS's exploration term (spec ``e2nas.md`` section 5).

A schedule is written as a string so that it is one ``--set`` value and one grid point:

* ``static:g``  gamma_k = g for every epoch;
* ``sig:s``     gamma_k = 1 - sigmoid(s * (2k/K - 1)) for epoch k of K ("Sig(s)"): close to 1 at the start
  (explore), 0.5 half-way, close to 0 at the end (exploit). Sig(10), K = 250: 0.99995, 0.5, 0.00005.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("static", "sig")


@dataclass(frozen=True)
class GammaSchedule:
    """A parsed schedule: ``kind`` is ``static`` or ``sig``; ``value`` is g or s."""

    kind: str
    value: float

    def __call__(self, epoch: int, epochs: int) -> float:
        """gamma for epoch ``epoch`` (0-based) of ``epochs``."""
        if self.kind == "static":
            return self.value
        x = self.value * (2.0 * epoch / max(epochs, 1) - 1.0)
        # 1 - sigmoid(x) = sigmoid(-x), written to stay exact for large |x|
        return 1.0 / (1.0 + math.exp(x)) if x < 0 else math.exp(-x) / (1.0 + math.exp(-x))

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


def parse_gamma(text: str) -> GammaSchedule:
    """Parse ``static:g`` (0 <= g <= 1) or ``sig:s`` (s > 0); raise ValueError saying what is accepted."""
    kind, sep, raw = str(text).strip().lower().partition(":")
    hint = "use 'static:g' with 0 <= g <= 1 (e.g. static:0.5) or 'sig:s' with s > 0 (e.g. sig:10)"
    if not sep or kind not in KINDS:
        raise ValueError(f"unknown gamma schedule {text!r}; {hint}")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"gamma schedule {text!r} needs a number after ':'; {hint}") from None
    if not math.isfinite(value) or (kind == "static" and not 0.0 <= value <= 1.0) or (kind == "sig" and value <= 0):
        raise ValueError(f"gamma schedule {text!r} is out of range; {hint}")
    return GammaSchedule(kind, value)


def gamma_at(schedule: str | GammaSchedule, epoch: int, epochs: int) -> float:
    """Convenience: ``parse_gamma(schedule)(epoch, epochs)``."""
    s = schedule if isinstance(schedule, GammaSchedule) else parse_gamma(schedule)
    return s(epoch, epochs)
