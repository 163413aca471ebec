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


def paired_difference_interval(x: list[bool | None], y: list[bool | None], z: float = 1.96) -> dict | None:
    """The difference of two pass rates on the same items (model A's and model B's verdicts per prompt, None
    where either is unknown) with its 95% interval: Newcombe's score interval for paired proportions (his
    method 10, built from the two Wilson intervals and the phi correlation of the pairs). Paired, so it is
    narrower than the independent difference_interval when the two models pass and fail the same prompts.
    {"diff", "ci95", "n", "a_only", "b_only"}; None with no common item."""
    pairs = [(bool(a), bool(b)) for a, b in zip(x, y) if a is not None and b is not None]
    n = len(pairs)
    if not n:
        return None
    both = sum(a and b for a, b in pairs)
    a_only = sum(a and not b for a, b in pairs)
    b_only = sum(b and not a for a, b in pairs)
    neither = n - both - a_only - b_only
    p1, p2 = (both + a_only) / n, (both + b_only) / n
    (l1, u1), (l2, u2) = wilson_interval(both + a_only, n, z), wilson_interval(both + b_only, n, z)
    den = (both + a_only) * (neither + b_only) * (both + b_only) * (neither + a_only)
    phi = (both * neither - a_only * b_only) / math.sqrt(den) if den else 0.0
    d = p1 - p2
    lo = d - math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    hi = d + math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return {
        "diff": round(d, 4),
        "ci95": [round(max(lo, -1.0), 4), round(min(hi, 1.0), 4)],
        "n": n,
        "a_only": a_only,
        "b_only": b_only,
    }
