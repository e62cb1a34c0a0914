"""Conda environments: exact pins, agreement with requirements.txt, used by every rule.

Conda channels are not reachable on the development machines, so the environments are
checked statically here.
"""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
# conda-forge names that differ from the PyPI names
CONDA_TO_PIP = {"pytorch": "torch"}
NOT_ON_PIP = {"python", "pytorch-gpu", "cuda-version", "pip"}
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)$")


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if m := PIN.match(line.strip()):
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def _deps(env: dict) -> tuple[list[str], list[str]]:
    conda, pip = [], []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip += dep["pip"]
        else:
            conda.append(dep)
    return conda, pip


def test_there_are_envs():
    assert {p.stem for p in ENVS} >= {"data", "torch", "eval"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_pins_every_package_exactly(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"][0] == "conda-forge" and "defaults" not in env["channels"]
    conda, pip = _deps(env)
    for spec in conda + pip:
        assert PIN.match(spec), f"{path.name}: '{spec}' is not an exact 'name==version' pin"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_agrees_with_requirements(path):
    req = _requirements()
    conda, pip = _deps(yaml.safe_load(path.read_text()))
    for spec in conda + pip:
        name, version = PIN.match(spec).groups()
        if name in NOT_ON_PIP:
            continue
        pip_name = CONDA_TO_PIP.get(name, name).lower()
        assert pip_name in req, f"{path.name}: {name} is not pinned in requirements.txt"
        assert req[pip_name] == version, (
            f"{path.name}: {name}=={version} but requirements.txt has {pip_name}=={req[pip_name]}"
        )


def test_torch_env_is_a_cuda_build():
    conda, _ = _deps(yaml.safe_load((REPO / "envs" / "torch.yaml").read_text()))
    names = {PIN.match(s).group(1) for s in conda}
    assert {"pytorch-gpu", "cuda-version"} <= names


def _rules() -> dict[str, str]:
    """Rule name -> its text, for every rule in the workflow's rule files."""
    rules = {}
    for smk in [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        parts = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            rules[name] = body.split("\n\n\n")[0]
    return rules


TARGET_RULES = {"all", "weight_maps"}


def test_every_rule_has_env_log_and_script():
    rules = _rules()
    assert {"fetch_isbi", "weights", "train", "predict_ctc", "evaluate_isbi", "tables"} <= set(
        rules
    )
    for name, body in rules.items():
        if name in TARGET_RULES:
            continue
        m = re.search(r'conda:\n\s+"\.\./\.\./envs/(\w+)\.yaml"', body)
        assert m, f"rule {name} has no conda env from envs/"
        assert (REPO / "envs" / f"{m.group(1)}.yaml").is_file()
        assert "log:" in body, f"rule {name} has no log"
        assert "python {input.script}" in body, f"rule {name} does not run a script from scripts/"


def test_gpu_rules_use_the_torch_env_and_declare_resources():
    rules = _rules()
    for name in ("train", "predict_isbi", "predict_isbi_test", "predict_ctc"):
        body = rules[name]
        assert "envs/torch.yaml" in body
        for key in ("mem_mb=", "runtime=", "gpu="):
            assert key in body, f"rule {name} lacks resource {key}"
