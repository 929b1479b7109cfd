"""How sure a success rate is: Wilson's 95% score interval from its solved and total counts.

9 of 10 seeds solved (0.9) and 1,945 of 2,500 (0.778) read alike as numbers; their intervals,
0.60-0.98 and 0.761-0.794, do not. Two settings whose intervals overlap are not told apart by
these seeds. Wilson's interval, unlike the normal approximation, stays within 0..1 and is not
empty at 0 or n solved (Wilson 1927; Brown, Cai and DasGupta 2001 recommend it for small n).
"""

import math
from dataclasses import dataclass

# The standard normal's 97.5th percentile: a two-sided 95% interval.
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    """A success rate's 95% interval, `low` to `high`, both within 0..1."""

    low: float
    high: float

    def overlaps(self, other: "Interval") -> bool:
        return self.low <= other.high and other.low <= self.high

    def text(self) -> str:
        """`0.60-0.98`; three decimals when two would round a narrow interval away."""
        decimals = 2 if self.high - self.low >= 0.05 else 3
        return f"{self.low:.{decimals}f}-{self.high:.{decimals}f}"


def wilson_interval(solved: int, total: int, z: float = Z_95) -> Interval | None:
    """Wilson's score interval of `solved` successes in `total` trials; None when `total` is 0.

    Raises:
        ValueError: counts that are not 0 <= solved <= total.
    """
    if total < 0 or not 0 <= solved <= total:
        raise ValueError(
            f"solved={solved}, total={total}: a success rate's counts are 0 <= solved <= total"
        )
    if total == 0:
        return None
    rate = solved / total
    square = z * z / total
    centre = (rate + square / 2) / (1 + square)
    margin = z * math.sqrt(rate * (1 - rate) / total + square / (4 * total)) / (1 + square)
    # At 0 or `total` solved one end is exactly the bound; rounding must not cross it.
    low = 0.0 if solved == 0 else max(0.0, centre - margin)
    high = 1.0 if solved == total else min(1.0, centre + margin)
    return Interval(low, high)
