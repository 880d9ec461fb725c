"""BentoML 1.4 service for one scikit-learn model (settings from the environment)."""

import os

import bentoml
import joblib
import numpy as np

BATCH = os.environ.get("BENTO_BATCHABLE", "1") == "1"


@bentoml.service(
    workers=int(os.environ.get("BENTO_WORKERS", "1")), logging={"access": {"enabled": False}}
)
class Model:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["MODEL_PATH"])

    # max_latency_ms is BentoML's deadline for queued requests (it answers 503 past it), not
    # a batching window: a tight value drops most requests under load, so it is generous
    @bentoml.api(batchable=BATCH, batch_dim=0, max_batch_size=32, max_latency_ms=1000)
    def predict(self, input: np.ndarray) -> np.ndarray:
        return self.model.predict(input)
