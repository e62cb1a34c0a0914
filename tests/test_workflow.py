"""The workflow itself: the whole DAG resolves, and the data + weight-map rules run for real.

Snakemake runs in a temporary working directory (``--directory``) on a synthetic mirror,
so nothing is written into the checkout.
"""

import csv
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from unet_repro.synthetic import make_mirror

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Path:
    return make_mirror(tmp_path_factory.mktemp("mirror"), seed=0)


@pytest.mark.parametrize("configfile", ["config.yaml", "quick.yaml"])
def test_dry_run_of_the_whole_dag(tmp_path, configfile):
    proc = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / configfile))
    out = proc.stdout + proc.stderr
    assert "fetch_isbi" in out and "weights" in out


def test_workflow_snakefile_is_the_same_workflow(tmp_path):
    """workflow/Snakefile (the catalog's entry point) and the top-level include: same DAG."""
    quick = ["-n", "--configfile", str(REPO / "config" / "quick.yaml")]
    top = _jobs(snakemake(tmp_path, *quick).stdout)
    cmd = [*SNAKEMAKE[:-1], str(REPO / "workflow" / "Snakefile"), "--directory", str(tmp_path)]
    proc = subprocess.run([*cmd, *quick], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _jobs(proc.stdout) == top and top["all"] == 1 and top["tables"] == 1


def test_wrong_config_value_stops_naming_the_key(tmp_path):
    proc = snakemake(
        tmp_path,
        "-n",
        "--configfile",
        str(REPO / "config" / "test.yaml"),
        "--config",
        "allow_unverified=maybe",
        check=False,
    )
    assert proc.returncode != 0
    assert "allow_unverified" in proc.stdout + proc.stderr


def test_overlapping_split_stops_naming_it(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["splits"]["PhC-C2DH-U373"]["leak"] = {"train": ["01", "02"], "test": ["02"]}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert proc.returncode != 0
    assert "splits.PhC-C2DH-U373.leak: train and test share sequences" in proc.stdout + proc.stderr


def test_only_the_whole_data_model_submits(tmp_path, mirror):
    cfg = ["--configfile", str(REPO / "config" / "test.yaml"), "--config", f"mirror={mirror}"]
    out = snakemake(tmp_path, "-n", "-p", *cfg).stdout
    assert "results/submission/isbi2012/all/seed0/test-volume.tif" in out
    assert "results/models/isbi2012/all/seed0/model.pt" in out
    assert out.count("--uncompressed") == 1
    assert "submission/isbi2012/hold4-5" not in out
    assert "scores/isbi2012/all" not in out and "fig4_isbi2012_all" not in out
    # no test volume wanted (no mirror): no whole-data model either
    out = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "test.yaml")).stdout
    assert "models/isbi2012/all" not in out and "models/isbi2012/hold4-5" in out


def _jobs(out: str) -> dict[str, int]:
    """Job counts of a dry run's "Job stats" table."""
    table = out.split("Job stats:")[1].split("total")[0]
    rows = [line.split() for line in table.splitlines()]
    return {r[0]: int(r[1]) for r in rows if len(r) == 2 and r[1].isdigit()}


def test_one_model_per_split_and_seed(tmp_path):
    quick = ["--configfile", str(REPO / "config" / "quick.yaml")]
    one = _jobs(snakemake(tmp_path, "-n", *quick).stdout)
    assert one["train"] == 3  # ISBI fold4, U373 train01, HeLa train01 (no test volume: no `all`)
    out = snakemake(tmp_path, "-n", "-p", *quick, "--config", "seeds=[0,7]").stdout
    assert _jobs(out)["train"] == 6 and _jobs(out)["tables"] == 1
    for seed in (0, 7):
        assert f"results/models/isbi2012/fold4/seed{seed}/model.pt" in out
        assert f"results/scores/DIC-C2DH-HeLa/train01/seed{seed}/02.seg.json" in out
        assert f'"seed": {seed}' in out  # the training settings carry the model's seed
    assert "fig4_isbi2012_fold4_seed0.png" in out and "fig4_isbi2012_fold4_seed7" not in out
    paper = _jobs(
        snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "config.yaml")).stdout
    )
    assert paper["train"] == 27  # 9 held-out splits x 3 seeds


def test_ablations_train_only_what_differs(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["ablations"]["same"] = {"train": {"iterations": cfg["train"]["iterations"]}}
    (tmp_path / "abl.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "ablations", "-n", "-p", "--configfile", str(tmp_path / "abl.yaml"))
    jobs = _jobs(out.stdout)
    # full method + no_border, one per (dataset, held-out split, seed); averaging variants
    # none; gt_plus_st the two CTC models only (ISBI has no silver truth: it reuses the full's)
    assert jobs["train"] == 2 * 3 + 2
    assert "results/ablations/gt_plus_st/models/isbi2012" not in out.stdout
    assert "results/ablations/no_border/models/isbi2012/hold4-5/seed0/model.pt" in out.stdout
    assert "ablations/same" not in out.stdout  # equal to the full method: nothing of its own
    # the averaging variant re-predicts with the full method's model, on ISBI and HeLa only
    # (U373 already predicts without averaging: tta_none is the full method there)
    assert jobs["predict_isbi"] == 3 and jobs["predict_ctc"] == 2 + 2 + 1 + 2
    lines = out.stdout.splitlines()
    tta = [
        ln for ln in lines if "ablations/tta_none/predictions/isbi2012" in ln and "--model" in ln
    ]
    assert tta and "--model results/models/isbi2012/hold4-5/seed0/model.pt" in tta[0]
    assert not any("ablations/tta_none/predictions/PhC" in ln for ln in lines)


def _dry_run(tmp_path, changes):
    """`snakemake -n -p` of config/test.yaml with ``changes`` (top-level keys) put in."""
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg.update(changes)
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(cfg))
    return snakemake(tmp_path, "-n", "-p", "--configfile", str(tmp_path / "changed.yaml")).stdout


def _u373_and_others(out, command):
    """The shell commands holding ``command`` (-p also lists each job's inputs, the script
    among them: hence its first argument with it), split into U373's and the others'."""
    commands = [ln for ln in out.splitlines() if command in ln]
    u373 = [ln for ln in commands if "PhC-C2DH-U373" in ln]
    others = [ln for ln in commands if "PhC-C2DH-U373" not in ln]
    assert u373 and others
    return u373, others


def test_model_override_reaches_that_datasets_training_only(tmp_path):
    out = _dry_run(tmp_path, {"model_overrides": {"PhC-C2DH-U373": {"base_channels": 7}}})
    u373, others = _u373_and_others(out, "--model-config")
    assert all('"base_channels": 7' in ln for ln in u373)
    width = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["model"]["base_channels"]
    assert all(f'"base_channels": {width}' in ln and width != 7 for ln in others)


def test_weights_override_reaches_that_datasets_weight_maps_only(tmp_path):
    out = _dry_run(tmp_path, {"weights_overrides": {"PhC-C2DH-U373": {"core_erosion": 2}}})
    u373, others = _u373_and_others(out, "scripts/weights.py --prepared")
    assert all("--core-erosion 2" in ln for ln in u373)
    assert not any("--core-erosion" in ln for ln in others)


@pytest.mark.parametrize("overlap", [None, [0.3, 0.7]])
def test_touching_pastes_make_composites_of_that_datasets_training_sequence_only(tmp_path, overlap):
    paste = {"touching_pastes": 2} | ({"touching_overlap": overlap} if overlap else {})
    paste |= {"touching_roundness": 0.8} if overlap else {}
    out = _dry_run(tmp_path, {"weights_overrides": {"PhC-C2DH-U373": paste}})
    pastes = [ln for ln in out.splitlines() if "scripts/paste.py --prepared" in ln]
    # only U373's training sequence 01, never the held-out 02, never another dataset
    assert len(pastes) == 1 and "PhC-C2DH-U373/01.npz" in pastes[0]
    assert "--touching-pastes 2" in pastes[0] and "--training-data GT" in pastes[0]
    # the share a copy covers: the script's default (0, 0.2) unless set
    assert ("--touching-overlap 0.3 0.7" in pastes[0]) == bool(overlap)
    assert overlap or "--touching-overlap" not in pastes[0]
    assert ("--touching-roundness 0.8" in pastes[0]) == bool(overlap)
    assert overlap or "--touching-roundness" not in pastes[0]
    u373, others = _u373_and_others(out, "scripts/train.py --prepared")
    assert all("--pasted results/weights/PhC-C2DH-U373/01.pasted.npz" in ln for ln in u373)
    assert not any("--pasted" in ln for ln in others)
    # without the setting nothing is pasted (the paper's data)
    out = snakemake(tmp_path, "-n", "-p", "--configfile", str(REPO / "config" / "test.yaml")).stdout
    assert "paste.py" not in out and "--pasted" not in out


def test_tile_size_per_dataset_reaches_the_predictions(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    predict = cfg["predict"] | {"tile_size": {"PhC-C2DH-U373": 124}}  # the others: 572
    out = _dry_run(tmp_path, {"predict": predict})
    commands = "\n".join(ln for ln in out.splitlines() if "--model" in ln)
    u373, others = _u373_and_others(commands, "scripts/predict.py")
    assert all("--tile-size 124" in ln for ln in u373)
    assert all("--tile-size 572" in ln for ln in others)


def test_precision_settings_reach_training_and_prediction(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["train"]["amp"] = "auto"
    cfg["predict"].update(amp="auto", channels_last=False)
    (tmp_path / "bf16.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(tmp_path, "-n", "-p", "--configfile", str(tmp_path / "bf16.yaml")).stdout
    lines = out.splitlines()
    predict = [ln for ln in lines if "scripts/predict.py" in ln and "--model" in ln]
    train = [ln for ln in lines if "--train-config" in ln]
    assert predict and all("--amp auto --channels-last false" in ln for ln in predict)
    assert train and all('"amp": "auto"' in ln for ln in train)


def test_ablation_variants_select_the_rows_to_build(tmp_path):
    """`ablation_variants` builds the chosen rows only; a name not defined stops the run."""
    test = ["--configfile", str(REPO / "config" / "test.yaml")]
    out = snakemake(tmp_path, "ablations", "-n", "-p", *test, "--config",
                    "ablation_variants=[gt_plus_st]").stdout  # fmt: skip
    jobs = _jobs(out)
    assert jobs["train"] == 3 + 2  # the full method's models, gt_plus_st's two CTC models
    assert "results/ablations/gt_plus_st/models/DIC-C2DH-HeLa" in out
    assert "ablations/no_border" not in out and "ablations/tta_none" not in out
    table = [ln for ln in out.splitlines() if "scripts/ablations.py --variant" in ln]
    assert table and "--variant gt_plus_st" in table[0] and "--variant no_border" not in table[0]
    proc = snakemake(tmp_path, "-n", *test, "--config", "ablation_variants=[nope]", check=False)
    assert proc.returncode != 0
    assert "ablation_variants: 'nope' not defined" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("overlay", "message"),
    [
        ({"x": {"splits": {}}}, "ablations.x.splits: a variant may change only"),
        ({"x": {"weights": {"w0": "many"}}}, "ablations.x: the merged configuration"),
    ],
)
def test_bad_ablation_stops_naming_it(tmp_path, overlay, message):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["ablations"] = overlay
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "bad.yaml"), check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr


def test_train_seed_key_points_to_seeds(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["train"]["seed"] = 3
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(tmp_path, "-n", "--configfile", str(tmp_path / "old.yaml"), check=False)
    assert proc.returncode != 0
    assert "train.seed is replaced by the top-level list `seeds`" in proc.stdout + proc.stderr


def test_weight_maps_run_on_synthetic_mirror(tmp_path, mirror):
    cfg = ["--configfile", str(REPO / "config" / "test.yaml"), "--config", f"mirror={mirror}"]
    snakemake(tmp_path, "weight_maps", *cfg)
    res = tmp_path / "results"
    for name in ["isbi2012/train", "PhC-C2DH-U373/01", "DIC-C2DH-HeLa/02"]:
        w = tifffile.imread(res / "weights" / f"{name}.weights.tif")
        t = tifffile.imread(res / "weights" / f"{name}.target.tif")
        assert w.shape == t.shape and w.dtype == np.float32 and t.dtype == np.uint8
        assert np.isfinite(w).all() and set(np.unique(t)) <= {0, 1}
        if name.startswith("isbi"):
            assert w.min() > 0
        else:  # the synthetic CTC frames: the first complete, the second lacks one cell
            prepared = np.load(res / "prepared" / f"{name}.npz")
            seg, markers = prepared["instances"], prepared["markers"][prepared["frames"]]
            assert w[0].min() > 0
            missing = (markers[1] > 0) & (seg[1] == 0)
            assert missing.any() and (w[1][missing] == 0).all()  # ignored
            assert (w[1][seg[1] > 0] > 0).all()  # never on annotated cells
    assert (res / "figures" / "fig3_isbi2012.png").stat().st_size > 10_000
    assert (res / "figures" / "fig3_DIC-C2DH-HeLa_01_t004.png").stat().st_size > 10_000
    log = (tmp_path / "logs" / "fetch" / "PhC-C2DH-U373.log").read_text()
    assert "verified against the mirror SHA256SUMS" in log
    # a second invocation has nothing to do
    proc = snakemake(tmp_path, "weight_maps", "-n", *cfg)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_corrupt_mirror_stops_with_both_hashes(tmp_path, mirror):
    bad = tmp_path / "bad"
    import shutil

    shutil.copytree(mirror, bad)
    path = bad / "isbi2012" / "train-labels.tif"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    work = tmp_path / "work"
    work.mkdir()
    proc = snakemake(
        work,
        "results/raw/isbi2012/train-labels.tif",
        "--configfile",
        str(REPO / "config" / "test.yaml"),
        "--config",
        f"mirror={bad}",
        check=False,
    )
    assert proc.returncode != 0
    log = (work / "logs" / "fetch" / "isbi2012.log").read_text()
    assert "SHA-256 mismatch" in log and "expected" in log and "observed" in log
    assert not (work / "results" / "raw" / "isbi2012" / "train-labels.tif").exists()


def test_paper_scale_without_gpu_stops_before_training(tmp_path, mirror):
    """`device: auto` without CUDA: the paper's network and iterations stop with an estimate."""
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    paper = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert paper["device"] == "auto"
    cfg.update(device="auto", model=paper["model"], train=paper["train"], mirror=str(mirror))
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(cfg))
    target = "results/models/isbi2012/hold4-5/seed0/model.pt"
    cmd = [*SNAKEMAKE, "--directory", str(tmp_path), "--cores", "2", target]
    cmd += ["--configfile", str(tmp_path / "paper.yaml")]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # as on a machine without a GPU
    # without the check this trains for days: a session of its own, killed whole on timeout
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        text=True,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        stdout, stderr = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the paper configuration started training on the CPU without stopping")
    log = tmp_path / "logs" / "train" / "isbi2012-hold4-5-seed0.log"
    assert proc.returncode != 0 and log.is_file(), stdout[-3000:] + stderr[-3000:]
    log = log.read_text()
    for text in (stdout, log):  # the terminal (the job's stdout) and the rule's log
        assert "error: no GPU here (CUDA is not available) and `device: auto`" in text
        assert "20000 iterations x" in text and "Stopped before training" in text
        assert "snakemake --cores 2 --configfile config/quick.yaml" in text
        assert "add --config device=cpu" in text
    assert not (tmp_path / "results" / "checkpoints").exists()  # no iteration ran


def test_whole_chain_on_synthetic_mirror(tmp_path, mirror):
    """Fetch -> weights -> train -> predict (with averaging) -> scores -> tables, report."""
    cfg = ["--configfile", str(REPO / "config" / "test.yaml"), "--config", f"mirror={mirror}"]
    snakemake(tmp_path, *cfg)
    res = tmp_path / "results"
    table1 = (res / "tables" / "table1.csv").read_text().splitlines()
    assert table1[0].startswith("name,source,split,seed,config,warping_error")
    ours = [line for line in table1 if ",ours," in line]
    assert len(ours) == 1 and ",hold4-5,0,test," in ours[0]
    table2 = (res / "tables" / "table2.csv").read_text()
    assert "train01 (test 02)" in table2 and "0.9203" in table2
    assert "PhC-U373_DET" in table2 and "CSB leader (today, test set)" in table2
    for ext in ("md", "tex"):
        assert (res / "tables" / f"table1.{ext}").stat().st_size > 200
    # CTC result folder: a uint16 mask for every frame of the held-out sequence
    masks = sorted(
        (res / "submission" / "PhC-C2DH-U373" / "train01" / "seed0" / "02_RES").glob("mask*.tif")
    )
    frames = sorted((mirror / "ctc" / "PhC-C2DH-U373" / "02").glob("t*.tif"))
    assert [m.name[4:] for m in masks] == [f.name[1:] for f in frames]
    assert (masks[0].parent / "res_track.txt").is_file()  # a complete CTC result folder
    assert tifffile.imread(masks[0]).dtype == np.uint16
    # ISBI submission, from the whole-data model only: uncompressed float32 P(non-membrane)
    # in [0, 1], one page per test slice
    assert not (res / "submission" / "isbi2012" / "hold4-5").exists()
    with tifffile.TiffFile(
        res / "submission" / "isbi2012" / "all" / "seed0" / "test-volume.tif"
    ) as tif:
        assert len(tif.pages) == 6
        assert {p.compression for p in tif.pages} == {tifffile.COMPRESSION.NONE}
        sub = tif.asarray()
    assert sub.dtype == np.float32 and sub.shape == (6, 96, 96)
    assert 0 <= sub.min() and sub.max() <= 1
    assert not (res / "scores" / "isbi2012" / "all").exists()  # never scored
    # a second invocation has nothing to do; the report builds
    proc = snakemake(tmp_path, "-n", *cfg)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    snakemake(tmp_path, *cfg, "--report", str(tmp_path / "report.html"))
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "table1" in html and "fig3_isbi2012" in html
    assert "Table 1 of the paper" in html and "model of seed" in html  # captions, rendered
    # the report embeds each item as a base64 data URI: the tables show as HTML, with the
    # numbers of the CSV (ours and the paper's) formatted as in the Markdown
    embedded = _report_items(html)
    assert {"table1.html", "table2.html", "table1.csv", "table2.tex"} <= set(embedded)
    # the report's provenance page: every scores file's record, per step
    assert "provenance.html" in embedded and "config_digest" in embedded["provenance.html"]
    assert "Provenance:" in embedded["table1.html"]
    rows1 = list(csv.DictReader(io.StringIO((res / "tables" / "table1.csv").read_text())))
    rows2 = list(csv.DictReader(io.StringIO((res / "tables" / "table2.csv").read_text())))
    ours1 = next(r for r in rows1 if r["source"] == "ours")
    ours2 = next(r for r in rows2 if r["source"] == "ours")
    page1, page2 = embedded["table1.html"], embedded["table2.html"]
    assert "<table>" in page1 and "<table>" in page2
    assert f"{float(ours1['rand_error']):.4f}" in page1 and ">0.0382<" in page1
    assert f"{float(ours1['warping_error']):.7f}" in page1 and "hold4-5" in page1
    assert f"{float(ours2['PhC-U373']):.4f}" in page2 and ">0.9203<" in page2
    assert "train01 (test 02)" in page2
    # the ablations: the full method's files reused, no_border trained, tta_none re-predicted
    snakemake(tmp_path, "ablations", *cfg)
    rows = list(csv.DictReader(io.StringIO((res / "tables" / "ablations.csv").read_text())))
    assert [r["variant"] for r in rows] == ["full", "no_border", "tta_none", "gt_plus_st"]
    assert float(rows[0]["rand_error"]) == pytest.approx(float(ours1["rand_error"]))
    for r in rows[1:]:
        delta = float(r["rand_error"]) - float(rows[0]["rand_error"])
        assert float(r["rand_error_delta"]) == pytest.approx(delta)
    # each variant's provenance: its own configuration digest where it computed something
    assert rows[0]["config_digest"] and rows[1]["config_digest"] != rows[0]["config_digest"]
    assert rows[2]["config_digest"].startswith(f"train: {rows[0]['config_digest']}; predict: ")
    assert "Provenance:" in (res / "tables" / "ablations.md").read_text()
    assert (res / "ablations" / "no_border" / "models" / "isbi2012").is_dir()
    assert not (res / "ablations" / "tta_none" / "models").exists()
    # GT+ST: gold frames and the silver truth of the others, the selection frames held back;
    # a CTC-only setting, so ISBI reuses the full method's files
    gtst = res / "ablations" / "gt_plus_st"
    assert not (gtst / "models" / "isbi2012").exists()
    assert (gtst / "models" / "DIC-C2DH-HeLa").is_dir()
    with open(gtst / "weights" / "DIC-C2DH-HeLa" / "01.frames.csv", newline="") as f:
        roles = [(int(r["frame"]), r["role"], r["truth"]) for r in csv.DictReader(f)]
    assert roles == [
        (0, "select", "silver"),
        (1, "train", "gold"),
        (2, "train", "silver"),
        (3, "select", "silver"),
        (4, "train", "gold"),
        (5, "train", "silver"),
    ]
    assert len(tifffile.imread(gtst / "weights" / "DIC-C2DH-HeLa" / "01.weights.tif")) == 4
    assert rows[3]["changes"] == "weights.training_data=GT+ST"
    snakemake(tmp_path, "all", "ablations", *cfg, "--report", str(tmp_path / "report2.html"))
    embedded = _report_items((tmp_path / "report2.html").read_text(encoding="utf-8"))
    assert {"table1.html", "ablations.html", "ablations.png"} <= set(embedded)
    assert f"{float(rows[1]['rand_error']):.4f}" in embedded["ablations.html"]
    # SEG agrees with the official package on the real pipeline output
    import json

    seg = json.loads(
        (res / "scores" / "DIC-C2DH-HeLa" / "train01" / "seed0" / "02.seg.json").read_text()
    )
    if seg["seg_py_ctcmetrics"] is None:  # a frame without background: skipped, and said so
        log = tmp_path / "logs" / "evaluate" / "DIC-C2DH-HeLa-train01-seed0-02.log"
        assert "no background pixel" in log.read_text()
    else:
        assert seg["seg"] == pytest.approx(seg["seg_py_ctcmetrics"], abs=1e-12)
        assert seg["det"] == pytest.approx(seg["det_py_ctcmetrics"], abs=1e-12)
        assert seg["valid_py_ctcmetrics"] == 1  # the Challenge's validation accepts the folder
    assert seg["op_csb"] == pytest.approx((seg["seg"] + seg["det"]) / 2)
    assert seg["ctc_result_complete"] is True
    # every gold object with its Jaccard and category; the losses add up to 1 - SEG
    objects_csv = res / "scores" / "DIC-C2DH-HeLa" / "train01" / "seed0" / "02.objects.csv"
    with open(objects_csv, newline="") as f:
        objects = list(csv.DictReader(f))
    assert objects and {o["category"] for o in objects} <= {"matched", "merged", "missed"}
    jaccards = [float(o["jaccard"]) for o in objects]
    assert sum(jaccards) / len(jaccards) == pytest.approx(seg["seg"], abs=1e-12)
    losses = seg["objects"]
    assert losses["objects"] == len(objects)
    total = losses["loss_matched"] + losses["loss_merged"] + losses["loss_missed"]
    assert total == pytest.approx(1 - seg["seg"], abs=1e-12)
    assert seg["objects_selection"]["objects"] > 0  # the same on the selection frames
    # the cut was chosen on the training sequence's selection frames, against their silver
    # truth: frames without gold truth, never trained on, and the scores file says so
    with open(res / "weights" / "DIC-C2DH-HeLa" / "01.frames.csv", newline="") as f:
        roles = {int(r["frame"]): r for r in csv.DictReader(f)}
    assert [t for t, r in roles.items() if r["role"] == "select"] == [0, 3]
    assert [t for t, r in roles.items() if r["role"] == "train"] == [1, 4]  # GT: the gold
    chosen = json.loads(
        (res / "scores" / "DIC-C2DH-HeLa" / "train01" / "seed0" / "postprocess.json").read_text()
    )
    assert chosen["selected_on"] == [
        {"prepared": "results/prepared/DIC-C2DH-HeLa/01.npz", "frames": [0, 3]}
    ]
    assert seg["selected_on"] == chosen["selected_on"] and seg["training_data"] == "GT"
    assert seg["selection_reference"].startswith("silver truth")
    assert "chosen on 2 unseen training frames vs ST" in (res / "tables" / "table2.md").read_text()
    assert ",GT," in (res / "tables" / "table2.csv").read_text()


def _report_items(html: str) -> dict[str, str]:
    """File name -> decoded text of the items a self-contained Snakemake report embeds."""
    import base64
    import re

    items = {}
    for name, data in re.findall(r"filename=([^;\"]+);base64,([A-Za-z0-9+/=]+)", html):
        items[name] = base64.b64decode(data).decode("utf-8", errors="replace")
    return items


@pytest.mark.parametrize("on", ["unseen", "annotated"])
def test_instance_selection_never_reads_the_heldout_sequence(tmp_path, mirror, on):
    """select_ctc gets the training sequence's files only (`unseen`: its selection frames and
    their frame roles; `annotated`: its gold frames); evaluate_ctc uses its choice."""
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["splits"]["DIC-C2DH-HeLa"] = {"train02": {"train": ["02"], "test": ["01"]}}
    cfg["evaluate"]["ctc_select_on"] = on
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    out = snakemake(
        tmp_path,
        "-n",
        "-p",
        "--configfile",
        str(tmp_path / "cfg.yaml"),
        "--config",
        f"mirror={mirror}",
    )
    out = out.stdout + out.stderr
    lines = out.splitlines()
    commands = [x for x in lines if "Shell command:" in x and "select_ctc" in x]
    if not commands:  # snakemake prints the command on the line after its header
        commands = [b for a, b in zip(lines, lines[1:], strict=False) if "select_ctc.py" in b]
    assert len(commands) == 2  # U373 train01, HeLa train02
    kind = "select" if on == "unseen" else "annotated"
    for line, train, test in zip(sorted(commands), ["02", "01"], ["01", "02"], strict=True):
        assert f"{kind}-{train}.tif" in line and f"/{train}.npz" in line
        assert f"-{test}.tif" not in line and f"/{test}.npz" not in line
        assert f"{test}_GT" not in line and f"/{test}.tif" not in line
        assert f"--on {on}" in line
        if on == "unseen":
            assert f"/{train}.frames.csv" in line and f"/{test}.frames.csv" not in line
        else:
            assert "frames.csv" not in line
    predict = [x for x in lines if "predict.py" in x and f"{kind}-" in x]
    assert predict and all(("--frames-csv" in x) == (on == "unseen") for x in predict)
    evaluate = [x for x in lines if "evaluate_ctc.py" in x]
    assert evaluate and all("postprocess.json" in line for line in evaluate)


def test_fixed_postprocessing_reaches_evaluate_ctc(tmp_path, mirror):
    """`ctc_postprocess: fixed`: the ctc_* values, the split at necks and the unseeded
    components among them, are the arguments of evaluate_ctc, and nothing is selected."""
    cfg = yaml.safe_load((REPO / "config" / "test.yaml").read_text())
    cfg["evaluate"].update(
        ctc_postprocess="fixed",
        ctc_threshold=0.7,
        ctc_mask_threshold=0.4,
        ctc_keep_unseeded=True,
        ctc_split_depth=3,
    )
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    configs = ["--configfile", str(tmp_path / "cfg.yaml"), "--config", f"mirror={mirror}"]
    proc = snakemake(tmp_path, "-n", "-p", *configs)
    lines = (proc.stdout + proc.stderr).splitlines()
    evaluate = [x for x in lines if "python " in x and "evaluate_ctc.py" in x]
    assert len(evaluate) == 2 and not [x for x in lines if "select_ctc.py" in x]
    for line in evaluate:
        assert "--threshold 0.7 " in line and "--mask-threshold 0.4" in line
        assert "--split-depth 3" in line and "--postprocess" not in line
        assert "--keep-unseeded" in line


def _results_without_times(root: Path) -> dict[str, object]:
    """Every file under ``results/``: its bytes, except the recorded wall-clock seconds.

    The loss CSV's ``seconds`` column and the checkpoint's ``seconds`` entry (and its copy of
    the CSV rows) are the only wall-clock times there (the rest of the timing is in
    ``logs/``); they are compared without them, every other file byte for byte.
    """
    import torch

    out: dict[str, object] = {}
    for path in sorted((root / "results").rglob("*")):
        if not path.is_file():
            continue
        name = str(path.relative_to(root))
        if path.name == "loss.csv":
            rows = list(csv.reader(io.StringIO(path.read_text())))
            assert rows[0] == ["iteration", "loss", "lr", "seconds"]
            out[name] = [r[:3] for r in rows]
        elif path.name in ("checkpoint.pt", "checkpoint.prev.pt"):
            state = torch.load(path, weights_only=True)
            assert "seconds" in state
            state.pop("seconds")
            state["loss_rows"] = [r[:3] for r in state["loss_rows"]]  # the CSV's, seconds aside
            buf = io.BytesIO()
            torch.save(state, buf)
            out[name] = buf.getvalue()
        else:
            out[name] = path.read_bytes()
    return out


def test_whole_chain_repeats_bit_for_bit(tmp_path, mirror):
    """The synthetic chain run twice, in two folders: identical models, predictions, scores,
    tables and figures (wall-clock seconds aside), with the provenance recorded in them.

    The records hold the checkout's git state, so editing the checkout while this runs makes
    the second run's files differ (as it should: they were made by another tree)."""
    cfg = ["--configfile", str(REPO / "config" / "test.yaml"), "--config", f"mirror={mirror}"]
    runs = [tmp_path / "first", tmp_path / "second"]
    for work in runs:
        work.mkdir()
        snakemake(work, *cfg)
    first, second = (_results_without_times(w) for w in runs)
    assert sorted(first) == sorted(second)
    differ = [name for name in first if first[name] != second[name]]
    assert not differ, f"differ between the two runs: {differ}"
    kinds = {Path(n).suffix for n in first}
    assert {".pt", ".tif", ".json", ".csv", ".npz", ".png", ".md", ".tex", ".html"} <= kinds
    models = [n for n in first if n.endswith("model.pt")]
    assert len(models) == 4  # isbi hold4-5 and all, U373 and HeLa train01
    # what made the numbers: in the scores files and in the tables
    import json

    scores = json.loads((runs[0] / "results/scores/isbi2012/hold4-5/seed0/scores.json").read_text())
    prov = scores["provenance"]
    assert prov["seed"] == 0 and set(prov) == {"seed", "train", "predict", "evaluate"}
    assert prov["train"]["threads"] == 1 and prov["train"]["device"].startswith("cpu: ")
    assert len(prov["train"]["config_digest"]) == 16
    assert prov["train"]["config_digest"] == prov["evaluate"]["config_digest"]
    assert prov["train"]["versions"]["torch"] and prov["evaluate"]["versions"]["numpy"]
    table1 = list(csv.DictReader(io.StringIO((runs[0] / "results/tables/table1.csv").read_text())))
    ours = next(r for r in table1 if r["source"] == "ours")
    assert ours["config_digest"] == prov["train"]["config_digest"] and ours["threads"] == "1"
    assert "torch" in ours["versions"] and ours["device"].startswith("cpu: ")
    md = (runs[0] / "results/tables/table2.md").read_text()
    assert "| provenance |" in md and "Provenance:" in md and "- P1: commit" in md
    page = (runs[0] / "results/tables/provenance.html").read_text()
    assert page.count("<tr>") >= 3 * 3  # 3 scores files (isbi, U373, HeLa) x 3 steps
