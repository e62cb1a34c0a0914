"""Conda environments: exact pins, agreement with requirements.txt, used by every rule.

Conda channels are not reachable on the development machines, so the environments are
checked statically here: every conda pin must have a row of feedstock evidence in
envs/README.md (the conda-forge recipe at a commit where that version appears), and must
agree with requirements.txt unless the difference is listed in CONDA_DIFFERS_FROM_PIP.
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
# Agreement rule: a conda pin equals the requirements.txt pin of the same package, except
# where conda-forge has no recipe for the requirements.txt version. Each exception names the
# conda pin, the requirements.txt pin and why; an exception that no longer applies fails too.
CONDA_DIFFERS_FROM_PIP = {
    "numba": ("0.65.1", "0.68.1", "numba-feedstock has no 0.66+ recipe (main: 0.65.1)"),
    "matplotlib": ("3.11.0", "3.11.2", "matplotlib-feedstock has no 3.11.2 recipe (main: 3.11.0)"),
    "scikit-learn": ("1.8.0", "1.9.1", "scikit-learn-feedstock has no 1.9 recipe (main: 1.8.0)"),
    "pandas": ("3.0.3", "3.1.1", "pandas-feedstock has no 3.1 recipe (main: 3.0.3)"),
    "tqdm": ("4.70.0", "4.70.1", "tqdm-feedstock has no 4.70.1 recipe (main: 4.70.0)"),
}
EVIDENCE = REPO / "envs" / "README.md"
EVIDENCE_HEADER = ["package", "version", "feedstock", "commit", "recipe"]


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
        expected = version
        if spec in conda and name in CONDA_DIFFERS_FROM_PIP:
            conda_version, expected, _ = CONDA_DIFFERS_FROM_PIP[name]
            assert version == conda_version, (
                f"{path.name}: {name}=={version}, but CONDA_DIFFERS_FROM_PIP lists {conda_version}"
            )
        assert req[pip_name] == expected, (
            f"{path.name}: {name}=={version} but requirements.txt has {pip_name}=={req[pip_name]}"
            + (f" (CONDA_DIFFERS_FROM_PIP expects {expected})" if expected != version else "")
        )


def test_conda_pip_differences_are_needed_and_explained():
    req = _requirements()
    conda_pins = _all_conda_pins()
    for name, (conda_version, pip_version, reason) in CONDA_DIFFERS_FROM_PIP.items():
        assert reason.strip(), f"{name}: no reason given"
        assert conda_version != pip_version, f"{name}: not a difference, remove the entry"
        assert name in conda_pins, f"{name}: not pinned in any env, remove the entry"
        assert req.get(CONDA_TO_PIP.get(name, name).lower()) == pip_version, (
            f"{name}: requirements.txt no longer pins {pip_version}; update the entry"
        )


def _all_conda_pins() -> dict[str, set[str]]:
    """Conda package name -> the versions pinned for it across all envs."""
    pins: dict[str, set[str]] = {}
    for path in ENVS:
        conda, _ = _deps(yaml.safe_load(path.read_text()))
        for spec in conda:
            name, version = PIN.match(spec).groups()
            pins.setdefault(name, set()).add(version)
    return pins


def _evidence() -> dict[str, dict[str, str]]:
    """The feedstock evidence table of envs/README.md: package -> its row."""
    rows: dict[str, dict[str, str]] = {}
    header = None
    for line in EVIDENCE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if "|" in line else None
        if cells == EVIDENCE_HEADER:
            assert header is None, "envs/README.md has two evidence tables"
            header = cells
            continue
        if header is None:
            continue
        if cells is None:
            break  # the table ends at the first line that is not a table row
        if set("".join(cells)) <= set("-: "):
            continue  # the separator row
        assert len(cells) == len(header), f"envs/README.md: malformed evidence row {line!r}"
        row = dict(zip(header, cells, strict=True))
        assert row["package"] not in rows, f"envs/README.md: two rows for {row['package']}"
        rows[row["package"]] = row
    assert header is not None, "envs/README.md has no evidence table"
    return rows


def test_evidence_rows_are_well_formed():
    for name, row in _evidence().items():
        assert PIN.match(f"{name}=={row['version']}"), f"{name}: bad version {row['version']!r}"
        assert re.fullmatch(r"conda-forge/[A-Za-z0-9_.-]+-feedstock", row["feedstock"]), (
            f"{name}: {row['feedstock']!r} is not a conda-forge feedstock"
        )
        assert re.fullmatch(r"[0-9a-f]{40}", row["commit"]), (
            f"{name}: {row['commit']!r} is not a full (40 hex digit) commit"
        )
        assert re.fullmatch(r"recipe/[A-Za-z0-9_./-]+\.yaml", row["recipe"]), (
            f"{name}: {row['recipe']!r} is not a recipe file"
        )


def test_every_conda_pin_has_feedstock_evidence():
    evidence = _evidence()
    for name, versions in sorted(_all_conda_pins().items()):
        assert len(versions) == 1, f"{name} is pinned to different versions: {sorted(versions)}"
        (version,) = versions
        assert name in evidence, f"{name}=={version} has no feedstock evidence in envs/README.md"
        assert evidence[name]["version"] == version, (
            f"{name}=={version} but envs/README.md records {evidence[name]['version']}"
        )


def test_no_stale_evidence_rows():
    stale = set(_evidence()) - set(_all_conda_pins())
    assert not stale, f"envs/README.md has evidence for packages no env pins: {sorted(stale)}"


def test_torch_env_is_a_cuda_build():
    conda, _ = _deps(yaml.safe_load((REPO / "envs" / "torch.yaml").read_text()))
    names = {PIN.match(s).group(1) for s in conda}
    assert {"pytorch-gpu", "cuda-version"} <= names


def _rules() -> dict[str, str]:
    """Rule name -> its text, for every rule in the workflow's rule files."""
    rules = {}
    snakefiles = [REPO / "Snakefile", REPO / "workflow" / "Snakefile"]
    for smk in [*snakefiles, *sorted((REPO / "workflow" / "rules").glob("*.smk"))]:
        parts = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            rules[name] = body.split("\n\n\n")[0]
    return rules


TARGET_RULES = {"all", "weight_maps", "ablations"}


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
