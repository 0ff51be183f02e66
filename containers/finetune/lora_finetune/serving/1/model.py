"""Triton Python backend of a fine-tuned artifact: base model + this folder's LoRA adapter.

Self-contained (torch, transformers, peft only): it runs in the endpoint's
serving image, which holds the base weights at ``INFERFLEET_BASE_MODEL``. The base
recorded in the artifact at training time is never used to load anything: the
endpoint decides what its models apply to.
"""

import os
from pathlib import Path

import numpy as np
import torch
import triton_python_backend_utils as pb_utils
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

DEFAULT_MAX_TOKENS = 128


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        version_dir = Path(args["model_repository"]) / args["model_version"]
        base = os.environ.get("INFERFLEET_BASE_MODEL")
        if not base:
            raise pb_utils.TritonModelException(
                "INFERFLEET_BASE_MODEL is not set on the endpoint: set it to the folder of the "
                "base model the adapters were trained on"
            )
        self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForCausalLM.from_pretrained(base)
        # Merging once makes every request as fast as the plain base model.
        self._model = (
            PeftModel.from_pretrained(model, version_dir / "adapter")
            .merge_and_unload()
            .to(self._device)
            .eval()
        )

    def execute(self, requests: list) -> list:
        return [self._answer(request) for request in requests]

    @torch.inference_mode()
    def _answer(self, request):
        text = pb_utils.get_input_tensor_by_name(request, "text_input").as_numpy().reshape(-1)[0]
        prompt = text.decode() if isinstance(text, bytes) else str(text)
        limit = pb_utils.get_input_tensor_by_name(request, "max_tokens")
        max_tokens = DEFAULT_MAX_TOKENS if limit is None else int(limit.as_numpy().reshape(-1)[0])
        if max_tokens < 1:
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(f"max_tokens: must be at least 1, got {max_tokens}")
            )
        prompt_ids = self._tokenizer(prompt, return_tensors="pt").input_ids.to(self._device)
        generated = self._model.generate(
            prompt_ids,
            attention_mask=torch.ones_like(prompt_ids),
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=self._tokenizer.pad_token_id,
        )
        answer = self._tokenizer.decode(
            generated[0, prompt_ids.shape[1] :], skip_special_tokens=True
        )
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("text_output", np.array([answer.encode()], dtype=np.object_))
            ]
        )
