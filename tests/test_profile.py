"""Profiles (stages/commands/profile.py): one merge for the device runner's params.yaml and `dvc exp run -S`, and the
shipped GPU profiles are valid params with the sizes the GPU run promises."""

import shutil

import pytest
import yaml

from stages.commands import profile
from stages.core import params as P
from stages.core.errors import SrlmError

from .conftest import ROOT

SHIPPED = [
    ["profiles/gpu.yaml"],
    ["profiles/gpu.yaml", "profiles/gpu-hub.yaml"],
    ["profiles/gpu.yaml", "profiles/gpu-dpo-lora.yaml"],
    ["profiles/gpu.yaml", "profiles/gpu-2gpu.yaml"],
    # the recipes of docs/recipes.md (benchmarks/recipes.py runs each as gpu.yaml + its overlay)
    *[
        ["profiles/gpu.yaml", f.relative_to(ROOT).as_posix()]
        for f in sorted((ROOT / "profiles").glob("recipe-*.yaml"))
    ],
]


def test_merge_mappings_key_by_key_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": [1, 2], "z": {"k": 1}}, "b": 2, "it": {"1": {"prev": 0}}}
    over = {"a": {"y": [3], "z": {"j": 2}}, "it": {"3": {"prev": 2}}, "c": None}
    assert profile.merge(base, over) == {
        "a": {"x": 1, "y": [3], "z": {"k": 1, "j": 2}},
        "b": 2,
        "it": {"1": {"prev": 0}, "3": {"prev": 2}},
        "c": None,
    }
    assert base["a"]["y"] == [1, 2]  # inputs untouched


@pytest.mark.parametrize("profiles", SHIPPED, ids=lambda p: "+".join(x.split("/")[-1] for x in p))
def test_dvc_exp_run_flags_make_the_same_params_as_merge(tmp_path, profiles):
    """`make run-gpu` (dvc exp run -S) and the device runner (apply) must run the same params."""
    from dvc.utils.hydra import apply_overrides  # what `dvc exp run -S` calls

    profiles = [ROOT / p for p in profiles]
    theirs, ours = tmp_path / "dvc.yaml", tmp_path / "ours.yaml"
    shutil.copy(ROOT / "params.yaml", theirs)
    shutil.copy(ROOT / "params.yaml", ours)
    apply_overrides(theirs, profile.flags(profile.combined(profiles)))
    assert P.load(theirs) == profile.apply(ours, profiles) == P.load(ours)


def test_an_empty_mapping_changes_nothing_as_with_dvc(tmp_path):
    from dvc.utils.hydra import apply_overrides

    base = {"a": {"b": {"x": 1}, "c": 1}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(base))
    apply_overrides(tmp_path / "p.yaml", profile.flags({"a": {"b": {}}}))
    assert yaml.safe_load((tmp_path / "p.yaml").read_text()) == profile.merge(base, {"a": {"b": {}}}) == base


def test_flags_spell_values_hydra_reads_back():
    sets = profile.flags({"a": {"b": 5e-06, "c": "it's: [x]", "d": [1, True, None], "3": {"prev": 2}}})
    assert sets == ["++a.b=5.0e-06", "++a.c='it\\'s: [x]'", "++a.d=[1,true,null]", "++a.3.prev=2"]
    with pytest.raises(SrlmError, match="cannot be passed"):
        profile.flags({"a b": 1})


def test_a_mistyped_profile_key_is_named_and_nothing_is_written(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    bad = tmp_path / "bad.yaml"
    bad.write_text("responses: {max_new_tokenz: 5}\n")
    with pytest.raises(SrlmError, match="responses.max_new_tokenz"):
        profile.apply(params, [bad])
    assert params.read_text() == (ROOT / "params.yaml").read_text()
    bad.write_text("- a list\n")
    with pytest.raises(SrlmError, match="must be a mapping"):
        profile.read(bad)


def test_gpu_profile_has_the_sizes_of_the_issue(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    p = profile.apply(params, [ROOT / "profiles/gpu.yaml"])
    assert p.backend.name == "vllm" and sorted(p.iterations) == ["1", "2", "3"]
    assert p.prompts.n >= 512 and p.responses.n == 4 and p.responses.max_new_tokens == 256
    # the judge grid's winner (BENCHMARKS.md "Judge: length"): length-balanced EFT + contrastive, compare mode
    assert p.judge.mode == "compare" and p.sft.balance == "length" and p.sft.contrastive > 0
    assert p.evaluate.max_prompts is None and p.evaluate.max_heldout_prompts is None
    # only keys that differ from params.yaml
    base = yaml.safe_load((ROOT / "params.yaml").read_text())

    def same(over, ref, path=""):
        for k, v in over.items():
            if isinstance(v, dict) and isinstance(ref.get(k), dict):
                yield from same(v, ref[k], f"{path}{k}.")
            elif k in ref and ref[k] == v:
                yield f"{path}{k}"

    assert list(same(profile.read(ROOT / "profiles/gpu.yaml"), base)) == []


def test_cli_flags_and_apply(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    shutil.copy(ROOT / "params.yaml", params)
    profile.main(["flags", str(ROOT / "profiles/gpu.yaml")])
    assert "++backend.name='vllm'" in capsys.readouterr().out.splitlines()
    profile.main(["apply", str(ROOT / "profiles/gpu.yaml"), "--params", str(params)])
    assert P.load(params).backend.name == "vllm"


def test_exp_run_hands_the_flags_and_the_rest_to_dvc(monkeypatch):
    seen = {}
    monkeypatch.setattr(profile.subprocess, "call", lambda cmd: seen.setdefault("cmd", cmd) and 0)
    with pytest.raises(SystemExit) as e:
        profile.main(["exp-run", str(ROOT / "profiles/gpu.yaml"), "--", "-n", "gpu", "--dry"])
    cmd = seen["cmd"]
    assert e.value.code == 0 and cmd[1:5] == ["-m", "dvc", "exp", "run"] and cmd[-3:] == ["-n", "gpu", "--dry"]
    assert cmd[cmd.index("++backend.name='vllm'") - 1] == "-S"
