"""Evaluation metrics of the two challenges in the U-Net paper.

* :mod:`unet_repro.metrics.isbi`: ISBI 2012 warping, Rand and pixel errors (Table 1).
* :mod:`unet_repro.metrics.isbi_thinned`: V_Rand and V_Info after border thinning, by which
  the ISBI 2012 leaderboard ranks today.
* :mod:`unet_repro.metrics.ctc`: Cell Tracking Challenge SEG, the "IOU" of Table 2, and DET
  and OP_CSB, by which its Cell Segmentation Benchmark ranks today.
"""

from unet_repro.metrics.ctc import (
    det_measure,
    evaluate_sequence_det,
    evaluate_sequence_seg,
    instances_from_probability,
    op_csb,
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
    "det_measure",
    "evaluate_sequence_det",
    "evaluate_sequence_seg",
    "instances_from_probability",
    "isbi_scores",
    "op_csb",
    "pixel_error",
    "rand_error",
    "seg_measure",
    "seg_score",
    "thresholds",
    "warping_error",
    "write_ctc_result",
]
