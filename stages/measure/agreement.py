"""Judge-quality metrics, pure functions on hand-checkable inputs (each is defined in docs/judge.md).

rank_agreement: pointwise judge scores vs human ranks (the paper's Table 4).
ab_agreement:   comparative "which answer is better" judging, each pair shown in a seeded shuffled
                order and again swapped, so position bias is measured rather than hidden.
head_to_head:   model X vs model Y on the same prompts, judged in both orders.
sliced:         any per-pair accuracy over all pairs and split by whether the human-preferred answer is the
                shorter or the longer one, with 95% intervals: the view in which a length detector fails.
length_correlation: how closely the judge's scores on the loop's own answers follow their length.
"""

from __future__ import annotations

import math
from itertools import combinations

from stages.measure.stats import ci95, wilson_interval

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
        "pairwise_accuracy_ci95": ci95(sum(outcomes), n_pairs),
        "pairwise_ties": _rate(sum(o == TIE for o in outcomes), n_pairs),
        "spearman": _rate(sum(spearman), n_corr),
        "kendall_tau": _rate(sum(kendall), n_corr),
        "exact_match": _rate(exact, n_corr),
        "five_best": _rate(fives_best, fives),
        "fives": fives,
    }


def pair_outcomes(groups: list[list[tuple[int, float | None, int]]]) -> list[tuple[float, bool | None]]:
    """Per human pair (answers of one prompt with different ranks): the judge's outcome (1, 0, or 0.5 for a tie
    or a missing score) and whether the human-preferred answer is the longer one (None: equal lengths).
    `groups`: per prompt, (human rank with 0 = best, judge score or None, answer length) for each answer."""
    out = []
    for answers in groups:
        for a, b in combinations(answers, 2):
            if a[0] == b[0]:
                continue
            better, worse = (a, b) if a[0] < b[0] else (b, a)
            out.append((_outcome(better[1], worse[1]), None if better[2] == worse[2] else better[2] > worse[2]))
    return out


def sliced(outcomes: list[float], better_longer: list[bool | None]) -> dict:
    """Accuracy over all pairs, and over the pairs whose human-preferred answer is the shorter or the longer
    one (equal lengths are in neither slice), each with its 95% Wilson interval; a tie counts half. A judge
    that reads length scores near 0 on the first slice and near 1 on the second."""

    def acc(values: list[float]) -> dict:
        n, k = len(values), sum(values)
        lo, hi = wilson_interval(k, n)
        return {"acc": _rate(k, n), "n": n, "ci95": [round(lo, 4), round(hi, 4)]}

    return {
        "all": acc(outcomes),
        "shorter_preferred": acc([o for o, longer in zip(outcomes, better_longer) if longer is False]),
        "longer_preferred": acc([o for o, longer in zip(outcomes, better_longer) if longer]),
    }


def _picks_first(p_first: float) -> float:
    return 1.0 if p_first > 0.5 else 0.0 if p_first < 0.5 else TIE


def ab_agreement(chosen_first: list[bool], p_first_shuffled: list[float], p_first_swapped: list[float]) -> dict:
    """Pair i is shown with the human-preferred answer first iff chosen_first[i] (a seeded coin), then swapped.

    p_first_* = the judge's P(answer 1 is better) in that presentation.
    """
    n = len(chosen_first)
    correct_shuf, correct_swap = _ab_correct(chosen_first, p_first_shuffled, p_first_swapped)
    firsts = [_picks_first(p) for p in p_first_shuffled + p_first_swapped]
    consistent = sum(a == b and a != TIE for a, b in zip(correct_shuf, correct_swap))
    acc_shuf, acc_swap = _rate(sum(correct_shuf), n), _rate(sum(correct_swap), n)
    return {
        "ab_pairs": n,
        "ab_accuracy_shuffled": acc_shuf,
        "ab_accuracy_swapped": acc_swap,
        "ab_accuracy": round((acc_shuf + acc_swap) / 2, 4) if n else None,
        # per pair the mean of its two orders, so n is the pairs, not the 2n presentations
        "ab_accuracy_ci95": ci95((sum(correct_shuf) + sum(correct_swap)) / 2, n),
        "ab_first_rate": _rate(sum(firsts), 2 * n),  # 0.5 = no position bias
        "ab_consistency": _rate(consistent, n),  # same answer picked in both orders
    }


def _ab_correct(chosen_first: list[bool], p_first_shuffled: list[float], p_first_swapped: list[float]):
    if not (len(chosen_first) == len(p_first_shuffled) == len(p_first_swapped)):
        raise ValueError("ab_agreement: inputs differ in length")
    shuf = [_picks_first(p) if cf else 1 - _picks_first(p) for cf, p in zip(chosen_first, p_first_shuffled)]
    swap = [1 - _picks_first(p) if cf else _picks_first(p) for cf, p in zip(chosen_first, p_first_swapped)]
    return shuf, swap


def ab_outcomes(chosen_first: list[bool], p_first_shuffled: list[float], p_first_swapped: list[float]) -> list[float]:
    """Per pair, the comparative judge's accuracy averaged over the two orders (1, 0.5 or 0)."""
    shuf, swap = _ab_correct(chosen_first, p_first_shuffled, p_first_swapped)
    return [(a + b) / 2 for a, b in zip(shuf, swap)]


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
        "win_ci95": ci95(wins, n),
        "tie": _rate(n - wins - losses, n),
        "loss": _rate(losses, n),
        "loss_ci95": ci95(losses, n),
        "win_minus_loss": _rate(wins - losses, n),
    }


def longer_wins_accuracy(pairs: list[tuple[int, int]]) -> float | None:
    """Pairwise accuracy of the "longer answer is better" rule on (chosen length, rejected length) pairs:
    the baseline a judge must beat to show it reads more than length."""
    return _rate(sum(_outcome(float(c), float(r)) for c, r in pairs), len(pairs))


def _spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's rho; None when x does not vary, 0 when only y is constant (scores that express no order)."""
    from scipy.stats import spearmanr

    if len(set(x)) < 2:
        return None
    if len(set(y)) < 2:
        return 0.0
    rho = spearmanr(x, y).statistic
    return 0.0 if math.isnan(rho) else float(rho)


def length_correlation(prompt_ids: list[str], scores: list[float | None], lengths: list[int]) -> dict:
    """Spearman's rho between judge score and answer length (characters), one value per answer.

    within: per prompt with >= 3 scored answers whose lengths are not all equal, rho between the answers' lengths
    and scores (0 when the judge gave them all the same score), then the mean over those prompts (`prompts`
    of them). Within a prompt the question is fixed, so this is length preference, not "long questions get long
    good answers". pooled: rho over all scored answers of all prompts. A judge that ranks by length scores 1."""
    by_prompt: dict[str, list[tuple[int, float]]] = {}
    for pid, s, n in zip(prompt_ids, scores, lengths):
        if s is not None:
            by_prompt.setdefault(pid, []).append((n, s))
    within = [
        rho
        for answers in by_prompt.values()
        if len(answers) >= 3 and (rho := _spearman([n for n, _ in answers], [s for _, s in answers])) is not None
    ]
    scored = [a for answers in by_prompt.values() for a in answers]
    pooled = _spearman([n for n, _ in scored], [s for _, s in scored]) if len(scored) >= 3 else None
    return {
        "within": _rate(sum(within), len(within)),
        "prompts": len(within),
        "pooled": None if pooled is None else round(pooled, 4),
        "answers": len(scored),
    }


def longer_wins_ci95(pairs: list[tuple[int, int]]) -> list[float] | None:
    """95% Wilson interval of `longer_wins_accuracy` on the same pairs."""
    return ci95(sum(_outcome(float(c), float(r)) for c, r in pairs), len(pairs))
