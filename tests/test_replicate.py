"""`replicate`: another draw of the loop from the same M0. Replicate 0 keeps every seed a run had before the knob
(so existing datasets stay byte-identical); another replicate changes the iteration stages' seeds only."""

from stages.core import params as P
from stages.core import rows

from .conftest import ROOT


def test_replicate_zero_keeps_the_seeds_and_another_changes_only_the_loops():
    p = P.load(ROOT / "params.yaml")
    assert p.replicate == 0
    for stage in ("prompts", "responses", "judge", "meta_judge", "dpo"):
        assert p.loop_seed(stage, 1) == rows.derive_seed(p.seed, stage, 1)  # what the stages derived before
    other = p.model_copy(update={"replicate": 1})
    assert other.loop_seed("judge", 1) != p.loop_seed("judge", 1)
    assert (
        other.loop_seed("judge", 1)
        != other.loop_seed("judge", 2)
        != other.model_copy(update={"replicate": 2}).loop_seed("judge", 2)
    )


def test_every_iteration_stage_that_samples_declares_replicate_and_sft_does_not():
    from stages import dpo, judge, meta_judge, prompts, responses, sft

    for stage in (prompts, responses, judge, meta_judge, dpo):
        assert "replicate" in stage.PARAMS, stage.__name__
    assert "replicate" not in sft.PARAMS  # the same M0 for every replicate
