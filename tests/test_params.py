import re

import pytest
import yaml

from stages.core import params as P
from stages.core.errors import SrlmError

from .conftest import ROOT


def load_text(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return P.load(path)


def test_repo_params_are_valid():
    p = P.load(ROOT / "params.yaml")
    assert p.responses.n == 4 and p.judge.k == 3 and p.dpo.beta == 0.1
    assert set(p.iterations) == {"1", "2"} and p.iterations["2"].prev == 1


def test_unknown_key_is_an_error_naming_it(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["judge"]["kk"] = 3
    with pytest.raises(SrlmError, match=r"judge\.kk: Extra inputs are not permitted"):
        load_text(tmp_path, yaml.safe_dump(raw))


@pytest.mark.parametrize(
    "section,key,value,msg",
    [
        ("judge", "k", 0, r"judge\.k: Input should be greater than or equal to 1"),
        ("responses", "n", 1, r"responses\.n"),
        ("responses", "top_p", 1.5, r"responses\.top_p"),
        ("judge", "mode", "vote", r"judge\.mode"),
        ("prompts", "max_similarity", 70, r"prompts\.max_similarity"),
    ],
)
def test_out_of_range_values_name_the_key(tmp_path, section, key, value, msg):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw[section][key] = value
    with pytest.raises(SrlmError, match=msg):
        load_text(tmp_path, yaml.safe_dump(raw))


def test_iteration_must_follow_an_earlier_model(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["iterations"]["2"] = {"prev": 2}
    with pytest.raises(SrlmError, match=r"iterations\.2\.prev must be < 2"):
        load_text(tmp_path, yaml.safe_dump(raw))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SrlmError, match="not found"):
        P.load(tmp_path / "nope.yaml")
    with pytest.raises(SrlmError, match="not valid YAML"):
        load_text(tmp_path, "judge: [unclosed")


def test_prompt_length_bounds_must_be_ordered(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["prompts"].update(min_chars=500, max_chars=100)
    with pytest.raises(SrlmError, match="min_chars must be <="):
        load_text(tmp_path, yaml.safe_dump(raw))


def test_degenerate_last_without_skip_degenerate_is_one_line_naming_both(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["pairs"].update(degenerate_last=True, skip_degenerate=False)
    with pytest.raises(SrlmError, match=r"pairs\.degenerate_last: true needs pairs\.skip_degenerate: true") as e:
        load_text(tmp_path, yaml.safe_dump(raw))
    assert "\n" not in str(e.value) and "pairs.pairs" not in str(e.value)
    raw["pairs"]["skip_degenerate"] = True  # the two together, and each alone, are valid
    assert load_text(tmp_path, yaml.safe_dump(raw)).pairs.degenerate_last
    raw["pairs"].update(degenerate_last=False, skip_degenerate=False)
    assert not load_text(tmp_path, yaml.safe_dump(raw)).pairs.skip_degenerate


def test_srlm_params_prints_exactly_params_yaml(capsys):
    from stages.commands import cli

    cli.main(["--params", str(ROOT / "params.yaml"), "params"])
    assert capsys.readouterr().out == (ROOT / "params.yaml").read_text()  # comments and order too


def _knob_classes(cls=P.Params, seen=None):
    """Every section model reachable from Params, except a source entry (whose options are per entry)."""
    import typing

    seen = seen if seen is not None else set()
    if cls in seen or cls is P.Source:
        return seen
    seen.add(cls)
    for f in cls.model_fields.values():
        for t in [f.annotation, *typing.get_args(f.annotation)] + [
            a for x in typing.get_args(f.annotation) for a in typing.get_args(x)
        ]:
            if isinstance(t, type) and issubclass(t, P.Strict):
                _knob_classes(t, seen)
    return seen


def test_the_schema_holds_no_default_so_params_yaml_is_the_one_source(tmp_path):
    optional = [
        f"{cls.__name__}.{name}"
        for cls in _knob_classes()
        for name, f in cls.model_fields.items()
        if not f.is_required()
    ]
    assert not optional, f"defaults in stages/core/params.py (put the value in params.yaml instead): {optional}"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    del raw["pairs"]["skip_degenerate"]
    with pytest.raises(SrlmError, match=r"pairs\.skip_degenerate: Field required"):
        load_text(tmp_path, yaml.safe_dump(raw))


def test_an_iteration_built_from_a_missing_one_is_an_error(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["iterations"] = {"1": {"prev": 0}, "3": {"prev": 2}}
    with pytest.raises(SrlmError, match=r"iterations\.3\.prev is 2, but there is no iteration 2") as e:
        load_text(tmp_path, yaml.safe_dump(raw))
    assert "seed_data" not in str(e.value)  # the message names the key, not the whole file


def _commented_keys(text: str) -> dict[str, bool]:
    """{dotted key: has prose} for params.yaml's mapping keys: a `#` comment on its line or on the line above."""
    found, stack, prev = {}, [], ""
    for line in text.split("\n"):
        m = re.match(r"^(\s*)([\w]+):", line)
        if m:
            indent = len(m.group(1))
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, m.group(2))]
            found[".".join(k for _, k in stack)] = "#" in line or prev.lstrip().startswith("#")
        if line.strip():
            prev = line
    return found


def _schema_fields(model, prefix=""):
    """Dotted names of every knob of the schema (a source, a list or dict of them or of iterations, and a
    generation's sampling settings, written inline, count as one knob)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, P.Strict) and sub not in (P.Source, P.Sampling):
            yield from _schema_fields(sub, key + ".")
        else:
            yield key


def test_every_knob_has_its_prose_in_params_yaml():
    """What a knob means lives beside it in params.yaml only (editing it reruns nothing); stages/core/params.py
    keeps names, types and bounds."""
    keys = _commented_keys((ROOT / "params.yaml").read_text())
    fields = list(_schema_fields(P.Params))
    assert len(fields) > 100
    missing = [f for f in fields if not keys.get(f)]
    assert not missing, f"params.yaml keys without a comment: {missing}"
    source = (ROOT / "stages/core/params.py").read_text()
    prose = [line for line in source.split("\n") if re.match(r"^    \w+: .*=.*  # ", line)]
    assert not prose, f"knob prose in stages/core/params.py (move it to params.yaml): {prose}"
