import pytest
import yaml

from stages import params as P

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
    with pytest.raises(SystemExit, match=r"judge\.kk: Extra inputs are not permitted"):
        load_text(tmp_path, yaml.safe_dump(raw))


@pytest.mark.parametrize("section,key,value,msg", [
    ("judge", "k", 0, r"judge\.k: Input should be greater than or equal to 1"),
    ("responses", "n", 1, r"responses\.n"),
    ("responses", "top_p", 1.5, r"responses\.top_p"),
    ("judge", "mode", "vote", r"judge\.mode"),
    ("prompts", "max_similarity", 70, r"prompts\.max_similarity"),
])
def test_out_of_range_values_name_the_key(tmp_path, section, key, value, msg):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw[section][key] = value
    with pytest.raises(SystemExit, match=msg):
        load_text(tmp_path, yaml.safe_dump(raw))


def test_iteration_must_follow_an_earlier_model(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["iterations"]["2"] = {"prev": 2}
    with pytest.raises(SystemExit, match=r"iterations\.2\.prev must be < 2"):
        load_text(tmp_path, yaml.safe_dump(raw))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SystemExit, match="not found"):
        P.load(tmp_path / "nope.yaml")
    with pytest.raises(SystemExit, match="not valid YAML"):
        load_text(tmp_path, "judge: [unclosed")


def test_prompt_length_bounds_must_be_ordered(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["prompts"].update(min_chars=500, max_chars=100)
    with pytest.raises(SystemExit, match="min_chars must be <="):
        load_text(tmp_path, yaml.safe_dump(raw))
