"""Small pure statistics helpers shared by the evaluation code."""

from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (z=1.96: 95%).

    Chosen over the normal (Wald) interval because benchmark accuracies sit near 0 or 1 on a few
    hundred items, where Wald collapses to zero width or leaves [0, 1]. n == 0 gives (0.0, 1.0):
    no data, no information.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # clamp float noise at the edges (k=0 or k=n give exactly 0 or 1 in exact arithmetic)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_interval(k1: int, n1: int, k2: int, n2: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval of p1 - p2 for two independent proportions: Newcombe's hybrid score interval (his method
    10), built from the two Wilson intervals. For two models answering the same prompts it is conservative
    (their outcomes correlate, which narrows the true interval)."""
    p1, p2 = k1 / n1 if n1 else 0.0, k2 / n2 if n2 else 0.0
    (l1, u1), (l2, u2) = wilson_interval(k1, n1, z), wilson_interval(k2, n2, z)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def ci95(successes: float, n: int) -> list[float] | None:
    """The 95% Wilson interval of successes/n as [low, high] rounded to 4 places, None when n is 0. A tie
    counted as half a success keeps its half: the interval of a fractional count is still well defined."""
    if n == 0:
        return None
    lo, hi = wilson_interval(min(max(successes, 0), n), n)
    return [round(lo, 4), round(hi, 4)]
