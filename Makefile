# Everything a fresh machine needs, installed on first use:
#   make run    build the index of corpus/ and open the chat at http://127.0.0.1:7860
#               (installs only what the default uses: no torch, no compiler)
#   make test   the whole test suite (installs torch, llama.cpp, Chromium and vLLM's CPU server)
#   make test-fast  the library's tests without the browser and vLLM
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: run test test-fast index bench browser proxy vllm clean-index

# The default: the int8 embedder (ONNX Runtime), FAISS, BM25, the web UI. Wheels only.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet -e .
	touch $@

# Tests and benchmarks: sentence-transformers on torch, llama.cpp (compiled), the test tools.
$(DEV_STAMP): $(STAMP)
	# torch first and pinned: an unpinned requirement would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[st,llamacpp,dev]'
	touch $@

run: $(STAMP)
	$(VENV)/bin/rag index
	$(VENV)/bin/rag serve

index: $(STAMP)
	$(VENV)/bin/rag index

browser:
	@command -v chromium >/dev/null && fc-list | grep -qi wqy || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei; }

# Debian's nginx for the sticky-session proxy test (tests/test_proxy_sticky.py); the test skips without it.
proxy:
	@test -x /usr/sbin/nginx || command -v nginx >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light; } || true

vllm: $(DEV_STAMP)
	bash scripts/setup_vllm_cpu.sh

test: $(DEV_STAMP) browser proxy vllm
	$(PY) -m pytest -ra

# The library's tests without the browser and the vLLM server (a few minutes): for quick checks
# while working. CI runs the whole of `make test`.
test-fast: $(DEV_STAMP)
	$(PY) -m pytest -q -m "not slow" --ignore=tests/test_ui_browser.py --ignore=tests/test_vllm_server.py \
	  --ignore=tests/test_vllm_backend.py

bench: $(DEV_STAMP)
	$(PY) bench/retrieval_quality.py

clean-index:
	rm -rf index/versions index/CURRENT
