"""Cold-start model: heterogeneous GNN + jointly trained, calibrated CTR head.

``ColdStartModel`` (scikit-learn contract; every setting in one ``ModelConfig``) learns from an
:class:`~kgrec.graph.export.ExportedGraph` and scores items and users it has never seen from
their text and Brand/Category/Attribute edges. Positives are pairs with a ``click``, ``cart``,
``purchase`` or ``rating`` event; pairs seen only as ``view`` are impression negatives.
``transform`` gives :class:`NodeEmbeddings`; ``retrieval_scores`` (dot product) retrieves,
``predict_proba`` / ``score_matrix`` (calibrated) re-rank.
"""

from kgrec.coldstart.calibration import PlattCalibrator, expected_calibration_error, log_loss
from kgrec.coldstart.config import ModelConfig
from kgrec.coldstart.estimator import ColdStartModel
from kgrec.coldstart.heads import CTRHead
from kgrec.coldstart.inference import NodeEmbeddings
from kgrec.coldstart.model import HeteroGNN

__all__ = [
    "CTRHead",
    "ColdStartModel",
    "HeteroGNN",
    "ModelConfig",
    "NodeEmbeddings",
    "PlattCalibrator",
    "expected_calibration_error",
    "log_loss",
]
