# Everything a fresh machine needs, installed on first use:
#   make run    build the index of corpus/ and open the chat at http://127.0.0.1:7860
#   make test   the whole test suite (installs Chromium and vLLM's CPU server for the real-part tests)
#   make test-fast  the library's tests without the browser and vLLM
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast index bench browser proxy vllm clean-index

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first and pinned: an unpinned requirement would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[embedded,dev]'
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

vllm: $(STAMP)
	bash scripts/setup_vllm_cpu.sh

test: $(STAMP) browser proxy vllm
	$(PY) -m pytest -ra

# The library's tests without the browser and the vLLM server (a few minutes): for quick checks
# while working. CI runs the whole of `make test`.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" --ignore=tests/test_ui_browser.py --ignore=tests/test_vllm_server.py \
	  --ignore=tests/test_vllm_backend.py

bench: $(STAMP)
	$(PY) bench/retrieval_quality.py

clean-index:
	rm -rf index/versions index/CURRENT
