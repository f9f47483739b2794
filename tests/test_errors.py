"""Issue 9, "errors a person can read": one error type, one CLI handler, bad batch lines,
settings checked where they are defined, a port in use reported before the address.
Real `rag` subprocesses over a real index."""
from __future__ import annotations

import json
import socket
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rag.batch import BatchItem, parse_batch_line, read_batch
from rag.answer.chat import QuestionError
from rag.core.errors import (
    EXIT_BUSY,
    EXIT_SERVICE,
    EXIT_USAGE,
    BatchLineError,
    ConfigError,
    IndexBusy,
    IndexUnavailable,
    InputError,
    RagError,
)
from rag.index.builder import build_index
from rag.reading.ingest import IngestError
from rag.answer.llm.base import LLMError, LLMUnavailable
from rag.notes import NoteError, UploadError
from rag.core.settings import Settings, load_settings, with_overrides
from rag.core.errors import IndexLocked
from rag.index.version_files import IndexNotFound
from tests.conftest import REPO_ROOT, clean_env, make_settings, rag_cli, write_notes
from ui.bind import ServeError, check_bind, check_port

NOTES = {
    "simcse.md": "# SimCSE\n\nSimCSE uses dropout noise as data augmentation for contrastive sentence embeddings.\n\n"
                 "## Loss\n\nThe InfoNCE loss pulls a sentence towards its dropout twin and away from in-batch "
                 "negatives.\n",
    "lora.md": "# LoRA\n\nLoRA freezes the pretrained weights and trains a low-rank update BA beside each "
               "projection.\n",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("errors")
    corpus = write_notes(root / "notes", NOTES)
    settings = make_settings(corpus, root / "index")
    build_index(settings)
    return settings


def cli(settings: Settings, *args: str, env: dict | None = None, cwd: Path | None = None):
    return rag_cli(*args, "--corpus", str(settings.corpus_dir), "--index", str(settings.index_dir),
                   env=env, cwd=cwd)


def one_error_line(res: subprocess.CompletedProcess) -> str:
    """The CLI's stderr must be exactly one line, `error: …`, and no traceback."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("WARNING")]
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


# --- the error tree ------------------------------------------------------------------------
@pytest.mark.parametrize("cls, base, code", [
    (IndexLocked, IndexBusy, EXIT_BUSY),
    (IndexNotFound, IndexUnavailable, EXIT_USAGE),
    (IngestError, InputError, EXIT_USAGE),
    (QuestionError, InputError, EXIT_USAGE),
    (NoteError, InputError, EXIT_USAGE),
    (UploadError, NoteError, EXIT_USAGE),
    (LLMError, RagError, EXIT_SERVICE),
    (LLMUnavailable, LLMError, EXIT_SERVICE),
    (ServeError, RagError, EXIT_USAGE),
    (ConfigError, RagError, EXIT_USAGE),
])
def test_every_user_facing_error_is_a_rag_error_with_its_exit_code(cls, base, code):
    exc = cls("what went wrong")
    assert isinstance(exc, RagError) and isinstance(exc, base)
    assert exc.exit_code == code and str(exc) == "what went wrong"


def test_the_historic_builtin_bases_still_catch_them():
    assert issubclass(IndexNotFound, FileNotFoundError) and issubclass(IndexLocked, RuntimeError)
    assert issubclass(QuestionError, ValueError) and issubclass(IngestError, ValueError)
    assert issubclass(NoteError, ValueError) and issubclass(LLMError, RuntimeError)


# --- one handler ---------------------------------------------------------------------------
def test_a_missing_corpus_is_one_line_and_exit_2(tmp_path):
    res = rag_cli("index", "--corpus", str(tmp_path / "nope"), "--index", str(tmp_path / "index"))
    assert res.returncode == EXIT_USAGE
    assert "corpus folder not found" in one_error_line(res)


def test_a_missing_index_is_one_line_and_exit_2(tmp_path, built):
    res = rag_cli("retrieve", "SimCSE", "--corpus", str(built.corpus_dir), "--index", str(tmp_path / "none"))
    assert res.returncode == EXIT_USAGE
    assert "run `rag index` first" in one_error_line(res)


def test_a_locked_index_is_one_line_and_exit_3(built):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from filelock import FileLock; l = FileLock(sys.argv[1]); l.acquire(); "
                               "print('held', flush=True); sys.stdin.read()", str(Path(built.index_dir) / ".lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = cli(built, "index", "--full")
        assert res.returncode == EXIT_BUSY
        assert "already building" in one_error_line(res)
    finally:
        holder.stdin.close()
        holder.wait(10)


def test_an_llm_server_that_is_down_is_one_line_or_a_retrieval_only_answer(built):
    env = clean_env(RAG_LLM_BACKEND="openai", RAG_LLM_BASE_URL="http://127.0.0.1:9/v1", RAG_LLM_TIMEOUT_S="2")
    res = cli(built, "ask", "What does SimCSE use as augmentation?", env=env)
    assert "Traceback" not in res.stderr
    if res.returncode:
        assert res.returncode == EXIT_SERVICE and "127.0.0.1:9" in one_error_line(res)
    else:
        assert "simcse.md" in res.stdout  # the answer fell back to the notes themselves


def test_debug_and_rag_debug_show_the_traceback_as_well(tmp_path):
    args = ("retrieve", "x", "--corpus", str(tmp_path), "--index", str(tmp_path / "none"))
    quiet = rag_cli(*args)
    assert "Traceback" not in quiet.stderr
    for res in (rag_cli("--debug", *args), rag_cli(*args, env=clean_env(RAG_DEBUG="1"))):
        assert res.returncode == EXIT_USAGE
        assert "Traceback" in res.stderr and "IndexNotFound" in res.stderr
        assert res.stderr.strip().splitlines()[-1].startswith("error: no index")


# --- batch lines -------------------------------------------------------------------------------
BATCH = [
    '{"id": "good-1", "question": "What does SimCSE use as augmentation?"}',
    'this is not json',
    '{"id": "hist", "question": "and the loss?", "history": "not a list"}',
    '{"id": "noq"}',
    '["a", "list"]',
    '{"id": "role", "question": "LoRA", "history": [{"role": "robot", "content": "x"}]}',
    '',
    '{"id": "good-2", "question": "Which weights does LoRA freeze?"}',
]


@pytest.mark.parametrize("line, message", [
    ('nope', "not JSON"),
    ('{"id": 1, "history": []}', 'no "question"'),
    ('{"id": 1, "question": "  "}', "blank"),
    ('{"id": 1, "question": "q", "history": {"role": "user"}}', "must be a list"),
    ('{"id": 1, "question": "q", "history": [{"content": "x"}]}', "history turn 1"),
    ('42', "not a JSON object"),
])
def test_parse_batch_line_names_what_is_wrong(line, message):
    with pytest.raises(BatchLineError, match=message) as info:
        parse_batch_line(line, 7)
    assert info.value.line == 7 and info.value.to_dict()["line"] == 7


def test_read_batch_yields_items_and_errors_in_order(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text("\n".join(BATCH) + "\n", encoding="utf-8")
    with open(path, encoding="utf-8") as fh:
        out = list(read_batch(fh))
    assert [type(x) for x in out] == [BatchItem, BatchLineError, BatchLineError, BatchLineError, BatchLineError,
                                      BatchLineError, BatchItem]
    assert [x.line for x in out] == [1, 2, 3, 4, 5, 6, 8]
    assert out[2].item_id == "hist" and out[1].item_id is None


def test_retrieve_batch_answers_every_good_line_and_an_error_object_for_each_bad_one(built, tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(BATCH) + "\n", encoding="utf-8")
    res = cli(built, "retrieve", "--batch", str(path))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(rows) == 7
    by_line = {r.get("line"): r for r in rows if "error" in r}
    assert set(by_line) == {2, 3, 4, 5, 6}
    assert by_line[3]["id"] == "hist" and "must be a list" in by_line[3]["error"]
    assert by_line[4]["id"] == "noq" and by_line[2]["id"] is None
    good = [r for r in rows if "error" not in r]
    assert [r["id"] for r in good] == ["good-1", "good-2"]
    assert good[0]["hits"][0]["source"] == "simcse.md" and good[1]["hits"][0]["source"] == "lora.md"


def test_a_missing_batch_file_is_one_line(built, tmp_path):
    res = cli(built, "retrieve", "--batch", str(tmp_path / "missing.jsonl"))
    assert res.returncode == EXIT_USAGE and "batch file not found" in one_error_line(res)


def test_a_malformed_history_option_is_one_line(built):
    res = cli(built, "retrieve", "loss", "--history", '{"role": "user"}')
    assert res.returncode == EXIT_USAGE and "--history" in one_error_line(res)


# --- settings -----------------------------------------------------------------------------------
@pytest.mark.parametrize("env, named", [
    ({"RAG_TOP_K": "-1"}, "top_k"),
    ({"RAG_TOP_K": "0"}, "top_k"),
    ({"RAG_CANDIDATES": "0"}, "candidates"),
    ({"RAG_PORT": "0"}, "port"),
    ({"RAG_PORT": "70000"}, "port"),
    ({"RAG_CHUNK_MAX_CHARS": "-5"}, "chunk_max_chars"),
    ({"RAG_CHUNK_TARGET_CHARS": "0"}, "chunk_target_chars"),
    ({"RAG_HOST": "0.0.0.0"}, "RAG_PASSWORD"),
    ({"RAG_HOST": "0.0.0.0", "RAG_USERNAME": "me", "RAG_PASSWORD": "   "}, "RAG_PASSWORD"),
])
def test_bad_settings_are_refused_where_they_are_defined(monkeypatch, tmp_path, env, named):
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=named) as info:
        load_settings()
    assert "\n" not in str(info.value)


def test_rag_top_k_minus_one_ask_gives_one_clear_line_not_an_answer(built):
    res = cli(built, "ask", "SimCSE", env=clean_env(RAG_TOP_K="-1", RAG_LLM_BACKEND="none"))
    assert res.returncode == EXIT_USAGE and res.stdout == ""
    line = one_error_line(res)
    assert "top_k" in line and "RAG_TOP_K" in line and "-1" in line and "at least 1" in line


def test_a_malformed_rag_toml_is_reported_with_its_line(built, tmp_path):
    (tmp_path / "rag.toml").write_text('top_k = 3\nllm_backend = "none"\nport = \n', encoding="utf-8")
    res = cli(built, "retrieve", "SimCSE", cwd=tmp_path, env=clean_env(PYTHONPATH=str(REPO_ROOT)))
    assert res.returncode == EXIT_USAGE
    line = one_error_line(res)
    assert "rag.toml" in line and "line 3" in line


def test_a_bad_value_in_rag_toml_is_one_line(built, tmp_path):
    (tmp_path / "rag.toml").write_text("candidates = 0\n", encoding="utf-8")
    res = cli(built, "retrieve", "SimCSE", cwd=tmp_path, env=clean_env(PYTHONPATH=str(REPO_ROOT)))
    assert res.returncode == EXIT_USAGE and "candidates" in one_error_line(res)


def test_overrides_are_validated_like_new_settings():
    with pytest.raises(ConfigError, match="port"):
        with_overrides(Settings(), port=0)
    assert with_overrides(Settings(), port=8001).port == 8001


def test_check_bind_still_refuses_settings_copied_without_validation():
    loose = Settings().model_copy(update={"host": "0.0.0.0"})
    with pytest.raises(ServeError, match="refusing to listen"):
        check_bind(loose)
    with pytest.raises(ServeError, match="both"):
        check_bind(Settings().model_copy(update={"username": "me", "password": "   "}))


# --- the port ------------------------------------------------------------------------------------
@pytest.fixture
def taken_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_check_port_names_a_port_in_use(taken_port):
    with pytest.raises(ServeError, match=f"port {taken_port} .* already in use"):
        check_port(Settings(port=taken_port))


def test_rag_serve_on_a_port_in_use_says_so_before_any_address_line(built, taken_port):
    res = cli(built, "serve", "--port", str(taken_port), "--no-watch",
              env=clean_env(RAG_LLM_BACKEND="none"))
    assert res.returncode == EXIT_USAGE
    assert "already in use" in one_error_line(res)
    assert "Notes chat on" not in res.stderr + res.stdout


def test_a_port_taken_after_the_check_is_reported_without_an_address_line(built, taken_port, monkeypatch, capsys):
    """The race between the port check and the bind, forced: the check is skipped (a named fake,
    since another program cannot be made to grab the port inside that moment on demand)."""
    import ui.app

    monkeypatch.setattr(ui.app, "check_listen", lambda settings: None)  # fake: the check saw the port free
    settings = built.model_copy(update={"port": taken_port, "watch_corpus": False, "llm_backend": "none"})
    assert ui.app.serve(settings) == EXIT_USAGE
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{taken_port}" in err and "Notes chat on" not in err


@pytest.mark.parametrize("port", ["0", "65536"])
def test_rag_serve_on_an_invalid_port_says_so(built, port):
    res = cli(built, "serve", "--port", port, "--no-watch", env=clean_env(RAG_LLM_BACKEND="none"))
    assert res.returncode == EXIT_USAGE
    assert "port" in one_error_line(res) and "Notes chat on" not in res.stderr


def test_rag_serve_on_an_address_not_of_this_machine_says_so(built):
    env = clean_env(RAG_LLM_BACKEND="none", RAG_USERNAME="me", RAG_PASSWORD="a long secret")
    res = cli(built, "serve", "--host", "203.0.113.7", "--port", "8123", "--no-watch", env=env)  # TEST-NET-3
    assert res.returncode == EXIT_USAGE
    assert "not an address of this machine" in one_error_line(res) and "Notes chat on" not in res.stderr


def test_an_unexpected_failure_is_still_one_line_with_a_hint_and_debug_shows_where(built, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text("{not json\n", encoding="utf-8")  # rag eval's own file format, read by evaluation.py
    res = cli(built, "eval", str(questions))
    assert res.returncode != 0
    line = one_error_line(res)
    assert "--debug" in line
    debug = cli(built, "--debug", "eval", str(questions))
    assert "Traceback" in debug.stderr and debug.stderr.strip().splitlines()[-1].startswith("error: ")


def test_a_batch_line_that_is_not_utf8_is_that_lines_error_and_every_other_line_is_answered(built, tmp_path):
    path = tmp_path / "batch.jsonl"
    good = [json.dumps({"id": i, "question": q}, ensure_ascii=False) for i, q in enumerate(["SimCSE 是什么", "LoRA"])]
    path.write_bytes(b"\xef\xbb\xbf" + good[0].encode() + b'\n{"id": "gbk", "question": "'
                     + "梯度".encode("gbk") + b'"}\n' + good[1].encode() + b"\n")
    for command in ("retrieve", "ask"):
        res = cli(built, command, "--batch", str(path), *(["--backend", "none"] if command == "ask" else []))
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        rows = [json.loads(line) for line in res.stdout.splitlines()]
        assert (rows[0]["id"], rows[1]["line"], rows[2]["id"]) == (0, 2, 1), command
        assert rows[1]["error"] == "line 2 is not UTF-8 text (byte 0xcc at column 28); save the batch file as UTF-8"
        assert all("error" not in r for r in (rows[0], rows[2])), rows


# --- settings files and index folders that cannot be used -----------------------------------------
def test_rag_config_naming_a_missing_file_is_an_error_line_not_ignored(built, tmp_path):
    res = cli(built, "retrieve", "LoRA", env=clean_env(RAG_CONFIG=str(tmp_path / "nope.toml")))
    assert res.returncode == 2
    assert one_error_line(res) == f"error: RAG_CONFIG names {tmp_path / 'nope.toml'}, which is not a file; " \
                                  "fix the path or unset RAG_CONFIG"


def test_a_binary_rag_toml_is_named_in_its_error_line(built, tmp_path):
    (tmp_path / "rag.toml").write_bytes(b"\xdb\x00\x91binary")
    res = cli(built, "retrieve", "LoRA", cwd=tmp_path, env=clean_env(PYTHONPATH=str(REPO_ROOT)))
    assert res.returncode == 2
    assert one_error_line(res) == "error: rag.toml is not a TOML text file (byte 0xdb at offset 0 is not UTF-8)"


def test_an_index_folder_under_a_file_says_which_file_is_in_the_way(built, tmp_path):
    (tmp_path / "afile").write_text("not a folder", encoding="utf-8")
    res = rag_cli("index", "--corpus", str(built.corpus_dir), "--index", str(tmp_path / "afile" / "index"))
    assert res.returncode == 2
    assert one_error_line(res) == (f"error: the index folder {tmp_path / 'afile' / 'index'} cannot be created: "
                                   f"{tmp_path / 'afile'} is a file, not a folder; move that file, or choose "
                                   "another index folder (--index or RAG_INDEX_DIR)")


def read_only(folder: Path) -> bool:
    """Make ``folder`` read-only for this user (chmod; for root, which ignores modes, chattr +i)."""
    folder.chmod(0o555)
    probe = folder / ".probe"
    try:
        probe.touch()
    except OSError:
        return True
    probe.unlink()
    return subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0


def test_a_read_only_index_folder_says_it_cannot_be_written_and_what_to_do(built, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(built.index_dir, index)
    corpus = write_notes(tmp_path / "notes", {**NOTES, "new.md": "# New\n\nA note the build must write.\n"})
    if not read_only(index):
        pytest.skip("cannot make a folder read-only here")
    try:
        res = rag_cli("index", "--corpus", str(corpus), "--index", str(index))
    finally:
        subprocess.run(["chattr", "-i", str(index)], capture_output=True)
        index.chmod(0o755)
    assert res.returncode == 2
    line = one_error_line(res)
    assert line.startswith(f"error: cannot write the index folder {index} (") and line.endswith(
        "); make it writable, or choose another index folder (--index or RAG_INDEX_DIR)")
