"""Judge-quality metrics, pure functions on hand-checkable inputs (each is defined in docs/judge.md).

rank_agreement: pointwise judge scores vs human ranks (the paper's Table 4).
ab_agreement:   comparative "which answer is better" judging, each pair shown in a seeded shuffled
                order and again swapped, so position bias is measured rather than hidden.
head_to_head:   model X vs model Y on the same prompts, judged in both orders.
"""

from __future__ import annotations

import math
from itertools import combinations

TIE = 0.5


def _outcome(better: float | None, worse: float | None) -> float:
    """1 if the judge orders the pair as humans do, 0 if reversed, 0.5 for a tie or a missing score."""
    if better is None or worse is None or better == worse:
        return TIE
    return 1.0 if better > worse else 0.0


def _rate(num: float, den: int) -> float | None:
    return round(num / den, 4) if den else None


def rank_agreement(groups: list[list[tuple[int, float | None]]]) -> dict:
    """`groups`: per prompt, (human rank with 0 = best, judge score or None) for each answer."""
    from scipy.stats import kendalltau, spearmanr

    outcomes, spearman, kendall, exact, fives, fives_best = [], [], [], 0, 0, 0
    for answers in groups:
        ranked = [(r, s) for r, s in answers]
        for (ra, sa), (rb, sb) in combinations(ranked, 2):
            if ra != rb:
                outcomes.append(_outcome(sa, sb) if ra < rb else _outcome(sb, sa))
        best = min(r for r, _ in ranked)
        for r, s in ranked:
            if s is not None and round(s) == 5:
                fives += 1
                fives_best += r == best
        scores = [s for _, s in ranked]
        if None in scores or len({r for r, _ in ranked}) < 2:
            continue  # correlations and exact match need every answer scored and a human order
        neg_rank = [-r for r, _ in ranked]
        # a judge that gives every answer the same score expresses no order: correlation 0, not undefined
        if len(set(scores)) == 1:
            rho = tau = 0.0
        else:
            rho, tau = spearmanr(neg_rank, scores).statistic, kendalltau(neg_rank, scores).statistic
        spearman.append(0.0 if math.isnan(rho) else float(rho))
        kendall.append(0.0 if math.isnan(tau) else float(tau))
        exact += all(
            _outcome(sa, sb) == 1.0 if ra < rb else _outcome(sb, sa) == 1.0
            for (ra, sa), (rb, sb) in combinations(ranked, 2)
            if ra != rb
        )
    n_pairs, n_corr = len(outcomes), len(spearman)
    return {
        "prompts": len(groups),
        "pairs": n_pairs,
        "pairwise_accuracy": _rate(sum(outcomes), n_pairs),
        "pairwise_ties": _rate(sum(o == TIE for o in outcomes), n_pairs),
        "spearman": _rate(sum(spearman), n_corr),
        "kendall_tau": _rate(sum(kendall), n_corr),
        "exact_match": _rate(exact, n_corr),
        "five_best": _rate(fives_best, fives),
        "fives": fives,
    }


def _picks_first(p_first: float) -> float:
    return 1.0 if p_first > 0.5 else 0.0 if p_first < 0.5 else TIE


def ab_agreement(chosen_first: list[bool], p_first_shuffled: list[float], p_first_swapped: list[float]) -> dict:
    """Pair i is shown with the human-preferred answer first iff chosen_first[i] (a seeded coin), then swapped.

    p_first_* = the judge's P(answer 1 is better) in that presentation.
    """
    n = len(chosen_first)
    if not (n == len(p_first_shuffled) == len(p_first_swapped)):
        raise ValueError("ab_agreement: inputs differ in length")
    correct_shuf = [_picks_first(p) if cf else 1 - _picks_first(p) for cf, p in zip(chosen_first, p_first_shuffled)]
    correct_swap = [1 - _picks_first(p) if cf else _picks_first(p) for cf, p in zip(chosen_first, p_first_swapped)]
    firsts = [_picks_first(p) for p in p_first_shuffled + p_first_swapped]
    consistent = sum(a == b and a != TIE for a, b in zip(correct_shuf, correct_swap))
    acc_shuf, acc_swap = _rate(sum(correct_shuf), n), _rate(sum(correct_swap), n)
    return {
        "ab_pairs": n,
        "ab_accuracy_shuffled": acc_shuf,
        "ab_accuracy_swapped": acc_swap,
        "ab_accuracy": round((acc_shuf + acc_swap) / 2, 4) if n else None,
        "ab_first_rate": _rate(sum(firsts), 2 * n),  # 0.5 = no position bias
        "ab_consistency": _rate(consistent, n),  # same answer picked in both orders
    }


def head_to_head(p_x_first: list[float], p_y_first: list[float]) -> dict:
    """X wins a prompt if the judge prefers X in both orders, loses if it prefers Y in both, else a tie.

    p_x_first[i] = P(answer 1 better) with X as answer 1; p_y_first[i] = the same with Y as answer 1.
    """
    n = len(p_x_first)
    wins = sum(p > 0.5 and q < 0.5 for p, q in zip(p_x_first, p_y_first))
    losses = sum(p < 0.5 and q > 0.5 for p, q in zip(p_x_first, p_y_first))
    return {
        "prompts": n,
        "win": _rate(wins, n),
        "tie": _rate(n - wins - losses, n),
        "loss": _rate(losses, n),
        "win_minus_loss": _rate(wins - losses, n),
    }


def longer_wins_accuracy(pairs: list[tuple[int, int]]) -> float | None:
    """Pairwise accuracy of the "longer answer is better" rule on (chosen length, rejected length) pairs:
    the baseline a judge must beat to show it reads more than length."""
    return _rate(sum(_outcome(float(c), float(r)) for c, r in pairs), len(pairs))
