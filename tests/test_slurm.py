"""The SLURM profiles, checked on a real one-node SLURM cluster.

``profiles/slurm`` (for users) and ``profiles/slurm-test`` (the same with the values of
the test cluster) must send the GPU rules (``train``, ``predict_*``) to a GPU partition
with one GPU, keep every other rule on the CPU partition, run ``localrules`` without
SLURM, and retry a failed job with a longer time limit.

Tests marked ``slurm`` start munged, slurmctld and slurmd on 127.0.0.1
(tests/slurm/localslurm.py) and skip when that is impossible (not root, no SLURM
packages: run ``.ci/slurm-setup.sh``). With ``UNET_REQUIRE_SLURM=1`` they fail instead
of skipping, so that CI cannot pass without having run them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
USER_PROFILE = REPO / "profiles" / "slurm"
TEST_PROFILE = REPO / "profiles" / "slurm-test"
GPU_RULES = (
    "train",
    "predict_isbi",
    "predict_isbi_test",
    "predict_ctc",
    "predict_ctc_annotated",
    "predict_ctc_selection",
)
TOY_GPU_RULES = ("train", "predict_isbi")
TOY_THREADS = {"preprocess": 2}  # threads of the toy rules, 1 where not listed


def _load_localslurm():
    path = Path(__file__).resolve().parent / "slurm" / "localslurm.py"
    spec = importlib.util.spec_from_file_location("unet_localslurm", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


localslurm = _load_localslurm()

# A small workflow with the rule names the profiles know. `train` fails on its first
# attempt after writing a checkpoint outside its declared outputs (as a preempted or
# timed-out training would) and resumes from it on the retry. Every SLURM job writes
# the partition and GPU count that SLURM gave it into its output.
TOY_SNAKEFILE = r"""
localrules: download

SLURM_ENV = "env | grep -E '^(SLURM_JOB_ID|SLURM_JOB_PARTITION|SLURM_GPUS_ON_NODE)=' | sort"

rule all:
    input: "results/predict.txt", "results/stats.txt"

rule download:
    output: "data/raw.txt"
    shell: "echo job=${{SLURM_JOB_ID:-local}} > {output}"

rule preprocess:
    input: "data/raw.txt"
    output: "data/prep.txt"
    threads: 2
    shell: "{SLURM_ENV} > {output}"

rule stats:
    input: "data/prep.txt"
    output: "results/stats.txt"
    shell: "{SLURM_ENV} > {output}"

rule train:
    input: "data/prep.txt"
    output: "results/model.txt"
    shell:
        '''
        mkdir -p checkpoints
        if [ ! -f checkpoints/train.state ]; then
            echo epoch=1 > checkpoints/train.state
            echo 'simulated preemption after epoch 1' >&2
            exit 1
        fi
        {{ cat checkpoints/train.state; echo resumed=yes; {SLURM_ENV}; }} > {output}
        '''

rule predict_isbi:
    input: "results/model.txt"
    output: "results/predict.txt"
    shell: "{SLURM_ENV} > {output}"
"""


# -- helpers ---------------------------------------------------------------------------
def load_profile(profile_dir: Path) -> dict:
    with open(profile_dir / "config.yaml") as fh:
        return yaml.safe_load(fh)


def eval_resource(value, attempt: int = 1, threads: int = 1):
    """Value of a profile resource as Snakemake computes it (Python expression or literal)."""
    if not isinstance(value, str):
        return value
    try:
        return eval(value, {"attempt": attempt, "threads": threads})
    except NameError:
        return value  # bare string such as cpu


def rule_resources(profile: dict, rule: str, attempt: int = 1, threads: int = 1) -> dict:
    """Resources a rule without own resources gets from the profile, for one attempt."""
    merged = {**profile["default-resources"], **profile["set-resources"].get(rule, {})}
    return {k: eval_resource(v, attempt, threads) for k, v in merged.items()}


def slurm_minutes(limit: str) -> int:
    """SLURM TimeLimit ``[D-]HH:MM:SS`` in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def slurm_mb(mem: str) -> int:
    units = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}
    return round(float(mem[:-1]) * units[mem[-1]])


def parse_dry_run(text: str) -> dict[str, dict[str, str]]:
    """Resources per rule from the job listing of ``snakemake -n``."""
    out = {}
    for block in re.split(r"\n\s*\n", text):
        name = re.search(r"^(?:local)?rule (\w+):", block, re.M)
        res = re.search(r"^\s*resources: (.*)$", block, re.M)
        if name and res:
            out[name.group(1)] = dict(kv.split("=", 1) for kv in res.group(1).split(", "))
    return out


def write_toy_workflow(workdir: Path) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "Snakefile").write_text(TOY_SNAKEFILE)


def run_snakemake(args, cwd: Path, env: dict, timeout: float = 300):
    env = dict(env)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- the profiles themselves (no cluster needed) ------------------------------------------
def test_profiles_agree_on_structure():
    """The test profile exercises what users get: same keys, rules and retry logic."""
    user, test = load_profile(USER_PROFILE), load_profile(TEST_PROFILE)
    for key in ("executor", "retries", "rerun-incomplete", "keep-going"):
        assert user[key] == test[key], key
    assert user["executor"] == "slurm" and user["retries"] == 2
    assert user["rerun-incomplete"] is True and user["use-conda"] is True
    assert set(user["set-resources"]) == set(test["set-resources"]) == set(GPU_RULES)
    assert set(user["default-resources"]) - {"slurm_account"} == set(test["default-resources"])
    for rule in GPU_RULES:
        assert set(user["set-resources"][rule]) == set(test["set-resources"][rule]), rule


@pytest.mark.parametrize("profile_dir", [USER_PROFILE, TEST_PROFILE], ids=["user", "test"])
def test_profile_requests(profile_dir):
    """GPU rules: other partition, one GPU; CPUs = threads; runtime grows with attempts."""
    from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options

    profile = load_profile(profile_dir)
    cpu = rule_resources(profile, "some_cpu_rule", threads=3)
    assert "gpu" not in cpu and "gpu_model" not in cpu
    assert cpu["cpus_per_task"] == 3
    for rule in GPU_RULES:
        res = rule_resources(profile, rule, threads=3)
        assert res["gpu"] == 1, rule
        assert res["slurm_partition"] != cpu["slurm_partition"], rule
        assert res["cpus_per_task"] == 3, rule
        assert res["mem_mb"] > cpu["mem_mb"], rule
        runtimes = [rule_resources(profile, rule, attempt)["runtime"] for attempt in (1, 2, 3)]
        assert runtimes[0] > 0 and runtimes[0] < runtimes[1] < runtimes[2], (rule, runtimes)
    defaults = [rule_resources(profile, "x", attempt)["runtime"] for attempt in (1, 2, 3)]
    assert defaults[0] < defaults[1] < defaults[2]
    # plugin 2.x refuses these inside slurm_extra: they must be resources
    for res in [profile["default-resources"], *profile["set-resources"].values()]:
        extra = str(res.get("slurm_extra", ""))
        for pattern in get_forbidden_slurm_options():
            assert not re.search(pattern, extra), (profile_dir.name, extra)


def _workflow_rules() -> dict[str, str]:
    """Rule name -> rule text, for the Snakefiles and workflow/rules/*.smk."""
    files = [
        REPO / "Snakefile",
        REPO / "workflow" / "Snakefile",
        *sorted((REPO / "workflow" / "rules").glob("*.smk")),
    ]
    text = "\n".join(p.read_text() for p in files if p.is_file())
    parts = re.split(r"^(?:rule|checkpoint) (\w+):", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_profiles_cover_the_workflow_gpu_rules():
    """Every rule that asks for a GPU is sent to the GPU partition, and no name is stale."""
    rules = _workflow_rules()
    if "train" not in rules:
        pytest.skip("workflow rules not found")
    gpu_rules = {name for name, body in rules.items() if re.search(r"^\s+gpu\s*=", body, re.M)}
    assert gpu_rules == set(GPU_RULES)
    for profile_dir in (USER_PROFILE, TEST_PROFILE):
        profile = load_profile(profile_dir)
        assert set(profile["set-resources"]) <= set(rules), profile_dir.name


def test_user_profile_edit_me_markers():
    """Every cluster-specific value of the user profile is marked for editing."""
    lines = (USER_PROFILE / "config.yaml").read_text().splitlines()
    for key in ("slurm_partition", "slurm_account", "gpu_model"):
        hits = [line for line in lines if line.strip().startswith(f"{key}:")]
        assert hits, key
        assert all("EDIT ME" in line for line in hits), hits


def test_user_profile_dry_run(tmp_path):
    """Snakemake itself parses the user profile and evaluates the resources as intended."""
    write_toy_workflow(tmp_path)
    # --cores: a dry run caps threads at the local cores, SLURM runs do not
    args = ["--profile", str(USER_PROFILE), "-n", "--cores", "4"]
    res = run_snakemake(args, tmp_path, dict(os.environ))
    assert res.returncode == 0, res.stderr[-3000:]
    jobs = parse_dry_run(res.stdout + res.stderr)
    profile = load_profile(USER_PROFILE)
    for rule in ("preprocess", "stats", *TOY_GPU_RULES):
        want = rule_resources(profile, rule, threads=TOY_THREADS.get(rule, 1))
        got = jobs[rule]
        for key in ("slurm_partition", "slurm_account", "runtime", "mem_mb", "cpus_per_task"):
            assert got[key] == str(want[key]), (rule, key, got)
        assert ("gpu" in got) == (rule in TOY_GPU_RULES), (rule, got)
        if rule in TOY_GPU_RULES:
            assert got["gpu"] == "1" and got["gpu_model"] == want["gpu_model"], got


# -- on a real SLURM cluster --------------------------------------------------------------
@pytest.fixture(scope="module")
def local_slurm():
    root = Path(tempfile.mkdtemp(prefix="unet-slurm-", dir="/tmp"))
    cluster = localslurm.LocalSlurm(root, cpus=2)
    try:
        cluster.start(timeout=60)
    except localslurm.ClusterUnavailable as err:
        shutil.rmtree(root, ignore_errors=True)
        if os.environ.get("UNET_REQUIRE_SLURM") == "1":
            pytest.fail(f"local SLURM cluster unavailable: {err}")
        pytest.skip(f"local SLURM cluster unavailable: {err}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def _last_job_id(cluster) -> int:
    jobs = cluster.jobs()
    return int(jobs[-1]["JobId"]) if jobs else 0


def _jobs_since(cluster, first_id: int) -> dict[str, list[dict]]:
    """Jobs with id > first_id, grouped by rule (the plugin's comment 'rule_<name>...')."""
    by_rule: dict[str, list[dict]] = {}
    for job in cluster.jobs():
        if int(job["JobId"]) > first_id:
            rule = re.match(r"rule_(\w+?)(?:_wildcards_.*)?$", job["Comment"]).group(1)
            by_rule.setdefault(rule, []).append(job)
    return by_rule


def _diagnostics(res, workdir: Path, cluster) -> str:
    logs = sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    parts = [res.stdout[-4000:], res.stderr[-6000:]]
    parts += [f"--- {p}\n{p.read_text(errors='replace')[-2000:]}" for p in logs[-4:]]
    parts.append(cluster.log_tail("slurmctld"))
    return "\n".join(parts)


def _key_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)


@pytest.mark.slurm
def test_toy_workflow_through_slurm(local_slurm, tmp_path):
    """sbatch gets partition, GPU, CPUs, memory and an escalating time limit per rule."""
    cluster = local_slurm
    profile = load_profile(TEST_PROFILE)
    write_toy_workflow(tmp_path)
    first = _last_job_id(cluster)

    res = run_snakemake(["--profile", str(TEST_PROFILE)], tmp_path, cluster.env())
    assert res.returncode == 0, _diagnostics(res, tmp_path, cluster)

    # outputs, as seen from inside the jobs
    assert _key_values(tmp_path / "data/raw.txt") == {"job": "local"}  # localrule
    for out in ("data/prep.txt", "results/stats.txt"):
        kv = _key_values(tmp_path / out)
        assert kv["SLURM_JOB_PARTITION"] == "cpu" and "SLURM_GPUS_ON_NODE" not in kv, kv
    for out in ("results/model.txt", "results/predict.txt"):
        kv = _key_values(tmp_path / out)
        assert kv["SLURM_JOB_PARTITION"] == "gpu" and kv["SLURM_GPUS_ON_NODE"] == "1", kv
    model = _key_values(tmp_path / "results/model.txt")
    assert model["epoch"] == "1" and model["resumed"] == "yes"  # retry resumed the checkpoint

    # the job records of the controller
    jobs = _jobs_since(cluster, first)
    assert set(jobs) == {"preprocess", "stats", *TOY_GPU_RULES}, jobs.keys()
    assert [j["JobState"] for j in jobs["train"]] == ["FAILED", "COMPLETED"]
    for rule, records in jobs.items():
        for attempt, job in enumerate(records, start=1):
            want = rule_resources(profile, rule, attempt, TOY_THREADS.get(rule, 1))
            assert job["Partition"] == want["slurm_partition"], (rule, job)
            assert int(job["NumCPUs"]) == want["cpus_per_task"], (rule, job)
            assert slurm_mb(job["MinMemoryNode"]) == want["mem_mb"], (rule, job)
            assert slurm_minutes(job["TimeLimit"]) == want["runtime"], (rule, attempt, job)
            gres = job.get("TresPerJob", "")
            if rule in GPU_RULES:
                assert gres == f"gres:gpu:{want['gpu_model']}:1", (rule, job)
            else:
                assert "gpu" not in gres, (rule, job)
    limits = [slurm_minutes(j["TimeLimit"]) for j in jobs["train"]]
    assert limits[1] == 2 * limits[0], limits

    # the completion log of slurmctld agrees on partitions
    comp = {r["JobId"]: r for r in cluster.jobcomp()}
    for records in jobs.values():
        for job in records:
            assert comp[job["JobId"]]["Partition"] == job["Partition"]


@pytest.mark.slurm
def test_workflow_through_slurm(local_slurm, tmp_path):
    """The whole workflow (config/test.yaml, synthetic mirror) up to Tables 1 and 2:
    downloads stay local, CPU rules go to the cpu partition, every training and
    prediction job to the gpu partition with one GPU."""
    cluster = local_slurm
    config_file = REPO / "config" / "test.yaml"
    if not (config_file.is_file() and (REPO / "workflow" / "rules" / "train.smk").is_file()):
        pytest.skip("workflow or config/test.yaml not found")
    mirror = tmp_path / "mirror"
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_synthetic.py"), str(mirror)],
        check=True,
        capture_output=True,
    )
    targets = ["results/tables/table1.csv", "results/tables/table2.csv"]
    workdir = tmp_path / "work"
    workdir.mkdir()
    first = _last_job_id(cluster)

    args = [*targets, "--snakefile", str(REPO / "Snakefile"), "--profile", str(TEST_PROFILE)]
    args += ["--configfile", str(config_file), "--config", f"mirror={mirror}"]
    res = run_snakemake(args, workdir, cluster.env(), timeout=420)
    assert res.returncode == 0, _diagnostics(res, workdir, cluster)
    for target in targets:
        assert (workdir / target).stat().st_size > 0, target
    models = sorted((workdir / "results" / "models").glob("*/*/seed*/model.pt"))
    checkpoints = sorted((workdir / "results" / "checkpoints").glob("*/*/seed*/checkpoint.pt"))
    assert models and len(checkpoints) == len(models)  # checkpoints are kept, not outputs

    profile = load_profile(TEST_PROFILE)
    jobs = _jobs_since(cluster, first)
    assert {"train", "predict_isbi", "predict_ctc"} <= set(jobs), jobs.keys()
    assert not any(rule.startswith("fetch") for rule in jobs), jobs.keys()  # localrules
    assert len(jobs["train"]) == len(models)  # one job per model, none retried
    for rule, records in jobs.items():
        want = rule_resources(profile, rule)
        for job in records:
            assert job["JobState"] == "COMPLETED", (rule, job)
            assert job["Partition"] == want["slurm_partition"], (rule, job)
            if rule in GPU_RULES:  # set-resources wins over the rule's own resources
                assert job["Partition"] == "gpu", (rule, job)
                assert job.get("TresPerJob") == "gres:gpu:fake:1", (rule, job)
                assert slurm_minutes(job["TimeLimit"]) == want["runtime"], (rule, job)
            else:
                assert job["Partition"] == "cpu", (rule, job)
                assert "gpu" not in job.get("TresPerJob", ""), (rule, job)
