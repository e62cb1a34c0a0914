"""Evaluation metrics of the two challenges in the U-Net paper.

* :mod:`unet_repro.metrics.isbi`: ISBI 2012 warping, Rand and pixel errors (Table 1).
* :mod:`unet_repro.metrics.ctc`: Cell Tracking Challenge SEG, the "IOU" of Table 2.
"""

from unet_repro.metrics.ctc import (
    evaluate_sequence_seg,
    instances_from_probability,
    seg_measure,
    seg_score,
    write_ctc_result,
)
from unet_repro.metrics.isbi import (
    MetricResult,
    isbi_scores,
    pixel_error,
    rand_error,
    thresholds,
    warping_error,
)

__all__ = [
    "MetricResult",
    "evaluate_sequence_seg",
    "instances_from_probability",
    "isbi_scores",
    "pixel_error",
    "rand_error",
    "seg_measure",
    "seg_score",
    "thresholds",
    "warping_error",
    "write_ctc_result",
]
