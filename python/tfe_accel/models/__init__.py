"""Secure logistic regression (the iDASH'19 system) and its float64 reference; see docs/training.md."""
from .metrics import auc, classification_metrics, relative_l2, roc_curve
from .plaintext import SIGMOIDS, PlainModel, sigmoid_exact, sigmoid_piecewise, train_plaintext
from .secure import (
    ProtocolUnavailable,
    SecureLogisticRegression,
    SecureResult,
    TrainConfig,
    accelerated_available,
    protocol_class,
)

__all__ = [
    "SIGMOIDS", "PlainModel", "ProtocolUnavailable", "SecureLogisticRegression", "SecureResult",
    "TrainConfig", "accelerated_available", "auc", "classification_metrics", "protocol_class",
    "relative_l2", "roc_curve", "sigmoid_exact", "sigmoid_piecewise", "train_plaintext",
]
