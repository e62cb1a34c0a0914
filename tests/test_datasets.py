"""Readers: internal form, clear errors for bad input; splits; synthetic data."""

import numpy as np
import pytest
import tifffile

from unet_repro import synthetic
from unet_repro.datasets import parse_indices, read_ctc_sequence, read_isbi
from unet_repro.io import DataError


def _isbi(tmp_path, labels):
    vol = np.zeros((2, 8, 8), np.uint8)
    tifffile.imwrite(tmp_path / "v.tif", vol, photometric="minisblack")
    tifffile.imwrite(tmp_path / "l.tif", labels, photometric="minisblack")
    return tmp_path / "v.tif", tmp_path / "l.tif"


def test_read_isbi_binary_labels(tmp_path):
    lab = np.zeros((2, 8, 8), np.uint8)
    lab[:, 2:5] = 255
    images, labels = read_isbi(*_isbi(tmp_path, lab))
    assert images.shape == (2, 8, 8) and labels.dtype == bool
    assert np.array_equal(labels, lab > 0)


def test_read_isbi_rejects_non_binary_labels(tmp_path):
    lab = np.arange(128, dtype=np.uint8).reshape(2, 8, 8)
    with pytest.raises(DataError, match="l.tif: ISBI labels must be binary"):
        read_isbi(*_isbi(tmp_path, lab))


def test_read_isbi_rejects_shape_mismatch(tmp_path):
    with pytest.raises(DataError, match="does not match image shape"):
        read_isbi(*_isbi(tmp_path, np.zeros((3, 8, 8), np.uint8)))


def test_truncated_tiff_is_named(tmp_path):
    vol, lab = _isbi(tmp_path, np.zeros((2, 8, 8), np.uint8))
    data = vol.read_bytes()
    vol.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="v.tif: unreadable or truncated TIFF"):
        read_isbi(vol, lab)
    with pytest.raises(DataError, match="nope.tif: file not found"):
        read_isbi(tmp_path / "nope.tif")


def test_synthetic_ctc_roundtrip_and_missing_gt(tmp_path):
    rng = np.random.default_rng(0)
    synthetic.write_ctc(tmp_path / "X", rng, n_frames=5, annotated=(1, 3))
    seq = read_ctc_sequence(tmp_path / "X", "01")
    assert seq.images.shape[0] == 5 and seq.frames.tolist() == [1, 3]
    assert seq.instances.dtype == np.uint16 and seq.instances.shape[1:] == seq.images.shape[1:]
    # touching instances exist (the point of the weight maps)
    inst = seq.instances[0].astype(int)
    touching = (inst[:, 1:] != inst[:, :-1]) & (inst[:, 1:] > 0) & (inst[:, :-1] > 0)
    assert touching.any()
    import shutil

    shutil.rmtree(tmp_path / "X" / "02_GT" / "SEG")
    with pytest.raises(DataError, match="02_GT/SEG: GT folder not found"):
        read_ctc_sequence(tmp_path / "X", "02")


def test_ctc_label_shape_mismatch(tmp_path):
    rng = np.random.default_rng(1)
    synthetic.write_ctc(tmp_path / "X", rng, n_frames=3, annotated=(1,))
    tifffile.imwrite(tmp_path / "X/01_GT/SEG/man_seg001.tif", np.zeros((5, 5), np.uint16))
    with pytest.raises(DataError, match="man_seg001.tif: label shape"):
        read_ctc_sequence(tmp_path / "X", "01")


def test_synthetic_isbi_is_read_back(tmp_path):
    synthetic.write_isbi(tmp_path, np.random.default_rng(0), n_slices=3, shape=(40, 48))
    images, labels = read_isbi(tmp_path / "train-volume.tif", tmp_path / "train-labels.tif")
    assert images.shape == (3, 40, 48)
    assert 0.3 < labels.mean() < 0.95


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("0-2", [0, 1, 2]), ("0-1,5", [0, 1, 5]), (3, [3]), (["01-02", 7], [1, 2, 7])],
)
def test_parse_indices(spec, expected):
    assert parse_indices(spec) == expected


@pytest.mark.parametrize("spec", ["2-1", "a", "0-3,3"])
def test_parse_indices_rejects(spec):
    with pytest.raises(ValueError):
        parse_indices(spec)


def test_parse_indices_bounds():
    with pytest.raises(ValueError, match="outside 0..29"):
        parse_indices("25-30", n=30)


def test_real_isbi_and_ctc(shared_data):
    images, labels = read_isbi(
        shared_data / "isbi2012/train-volume.tif", shared_data / "isbi2012/train-labels.tif"
    )
    assert images.shape == (30, 512, 512) and abs(labels.mean() - 0.780) < 0.001
    seq = read_ctc_sequence(shared_data / "ctc/PhC-C2DH-U373", "01")
    assert seq.images.shape == (115, 520, 696)
    assert seq.frames.tolist()[:3] == [1, 5, 6] and len(seq.frames) == 15


def test_partial_annotations_are_read_and_missing_folders_named(tmp_path):
    import shutil

    synthetic.write_ctc(tmp_path / "X", np.random.default_rng(2), n_frames=5, annotated=(1, 3))
    seq = read_ctc_sequence(tmp_path / "X", "01", partial=True)
    # markers and silver truth of every frame, not only of the annotated ones
    assert seq.markers.shape == seq.silver.shape == seq.images.shape
    assert seq.has_silver.tolist() == [True] * 5
    # frame 3 is partially annotated: one tracked cell has no gold object
    n_gold = [len(np.unique(i)) - 1 for i in seq.instances]
    n_tracked = [len(np.unique(m)) - 1 for m in seq.markers[seq.frames]]
    assert n_gold[0] == n_tracked[0] and n_gold[1] == n_tracked[1] - 1
    assert read_ctc_sequence(tmp_path / "X", "01").markers is None  # not asked for
    (tmp_path / "X" / "01_ST" / "SEG" / "man_seg002.tif").unlink()  # one frame without ST
    seq = read_ctc_sequence(tmp_path / "X", "01", partial=True)
    assert seq.has_silver.tolist() == [True, True, False, True, True]
    assert not seq.silver[2].any()
    shutil.rmtree(tmp_path / "X" / "01_ST")
    with pytest.raises(DataError, match="01_ST/SEG: folder not found.*missing_annotations"):
        read_ctc_sequence(tmp_path / "X", "01", partial=True)
    seq = read_ctc_sequence(tmp_path / "X", "01", partial=True, missing="fallback")
    assert seq.silver is None and seq.markers is not None
    shutil.rmtree(tmp_path / "X" / "01_GT" / "TRA")
    with pytest.raises(DataError, match="01_GT/TRA: folder not found"):
        read_ctc_sequence(tmp_path / "X", "01", partial=True)
    assert read_ctc_sequence(tmp_path / "X", "01", True, "fallback").markers is None
