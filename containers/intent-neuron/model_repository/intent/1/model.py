"""Triton Python backend glue for the intent classifier; logic lives in ``intent_classifier``.

Environment: ``INFERFLEET_INTENT_MODEL_DIR`` (the folder ``intent_classifier.compile``
wrote) and ``INFERFLEET_INSTANCE_ID`` (defaults to the host name).
"""

import os
import socket
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from intent_classifier.runtime import IntentRuntime

DEFAULT_MODEL_DIR = "/opt/models/intent"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self._runtime = IntentRuntime(
            Path(os.environ.get("INFERFLEET_INTENT_MODEL_DIR", DEFAULT_MODEL_DIR))
        )
        self._instance_id = os.environ.get("INFERFLEET_INSTANCE_ID") or socket.gethostname()

    def execute(self, requests: list) -> list:
        # Each request carries one or more rows; classify all rows of the batch at once.
        texts_per_request = [
            [
                value.decode() if isinstance(value, bytes) else str(value)
                for value in pb_utils.get_input_tensor_by_name(request, "inputs")
                .as_numpy()
                .reshape(-1)
            ]
            for request in requests
        ]
        predictions = iter(
            self._runtime.classify([text for texts in texts_per_request for text in texts])
        )
        responses = []
        for texts in texts_per_request:
            rows = [next(predictions) for _ in texts]
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor(
                            "label",
                            np.array([[row.label.encode()] for row in rows], dtype=np.object_),
                        ),
                        pb_utils.Tensor(
                            "scores", np.array([row.scores for row in rows], dtype=np.float32)
                        ),
                        pb_utils.Tensor(
                            "instance_id",
                            np.array([[self._instance_id.encode()]] * len(rows), dtype=np.object_),
                        ),
                    ]
                )
            )
        return responses
