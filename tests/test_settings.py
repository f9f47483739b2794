"""Settings precedence: explicit arguments > RAG_* environment > rag.toml (or RAG_CONFIG) > defaults."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from rag.cli import build_parser, settings_from
from rag.index.builder import chunker_identity
from rag.core.settings import Settings


@pytest.fixture
def isolated(monkeypatch, tmp_path) -> Path:
    """No RAG_* variables and a working directory without rag.toml."""
    for name in list(os.environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


TOML = """
corpus_dir = "toml-notes"
top_k = 9
chunk_max_chars = 700
extensions = [".md"]
llm_backend = "none"
not_a_setting = "ignored"
"""


def test_defaults(isolated):
    s = Settings()
    assert s.corpus_dir == Path("corpus") and s.index_dir == Path("index")
    assert s.top_k == 5 and s.embedding_backend == "auto"
    assert s.embedding_model == "intfloat/multilingual-e5-small"
    assert s.extensions == (".md", ".markdown", ".txt", ".pdf", ".html", ".htm")


def test_environment_overrides_defaults(isolated, monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "7")
    monkeypatch.setenv("RAG_CORPUS_DIR", "/data/notes")
    monkeypatch.setenv("RAG_EXTENSIONS", '[".md", ".org"]')
    monkeypatch.setenv("RAG_EMBEDDING_BACKEND", "sentence-transformers")
    monkeypatch.setenv("RAG_WATCH_CORPUS", "false")
    s = Settings()
    assert s.top_k == 7 and s.corpus_dir == Path("/data/notes")
    assert s.extensions == (".md", ".org")
    assert s.embedding_backend == "sentence-transformers"
    assert s.watch_corpus is False


def test_rag_toml_in_the_working_directory_is_loaded(isolated):
    (isolated / "rag.toml").write_text(TOML, encoding="utf-8")
    s = Settings()
    assert s.corpus_dir == Path("toml-notes") and s.top_k == 9 and s.chunk_max_chars == 700
    assert s.extensions == (".md",) and s.llm_backend == "none"
    assert not hasattr(s, "not_a_setting")


def test_rag_config_names_the_file_to_load(isolated, monkeypatch, tmp_path_factory):
    (isolated / "rag.toml").write_text('top_k = 2\n', encoding="utf-8")  # not read when RAG_CONFIG is set
    config = tmp_path_factory.mktemp("elsewhere") / "my-settings.toml"
    config.write_text(TOML, encoding="utf-8")
    monkeypatch.setenv("RAG_CONFIG", str(config))
    s = Settings()
    assert s.top_k == 9 and s.corpus_dir == Path("toml-notes")


def test_environment_beats_the_config_file_and_arguments_beat_both(isolated, monkeypatch):
    (isolated / "rag.toml").write_text(TOML, encoding="utf-8")
    monkeypatch.setenv("RAG_TOP_K", "7")
    s = Settings()
    assert s.top_k == 7  # env over toml
    assert s.chunk_max_chars == 700  # toml where env says nothing
    explicit = Settings(top_k=3, corpus_dir=Path("given"))
    assert explicit.top_k == 3 and explicit.corpus_dir == Path("given")  # arguments over both
    assert explicit.chunk_max_chars == 700


def test_cli_arguments_beat_environment_and_config(isolated, monkeypatch):
    (isolated / "rag.toml").write_text(TOML, encoding="utf-8")
    monkeypatch.setenv("RAG_INDEX_DIR", "/env/index")
    args = build_parser().parse_args(["retrieve", "--corpus", "cli-notes", "--index", "cli-index", "q"])
    s = settings_from(args)
    assert s.corpus_dir == Path("cli-notes") and s.index_dir == Path("cli-index")
    assert s.top_k == 9  # the rest still comes from the file
    plain = settings_from(build_parser().parse_args(["retrieve", "q"]))
    assert plain.corpus_dir == Path("toml-notes") and plain.index_dir == Path("/env/index")


@pytest.mark.parametrize("source", ["env", "toml"])
def test_invalid_values_are_rejected(isolated, monkeypatch, source):
    if source == "env":
        monkeypatch.setenv("RAG_EMBEDDING_BACKEND", "word2vec")
    else:
        (isolated / "rag.toml").write_text('top_k = "many"\n', encoding="utf-8")
    with pytest.raises(ValidationError):
        Settings()


def test_settings_from_the_file_reach_the_components(isolated):
    (isolated / "rag.toml").write_text(TOML, encoding="utf-8")
    assert ":max=700:" in chunker_identity(Settings())


def test_password_is_not_shown_in_repr(isolated, monkeypatch):
    monkeypatch.setenv("RAG_PASSWORD", "hunter2-secret")
    s = Settings()
    assert s.password == "hunter2-secret"
    assert "hunter2-secret" not in repr(s)
