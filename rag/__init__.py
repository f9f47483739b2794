"""notes-rag: answer questions from your own notes, with cited sources.

The package is the pipeline, one subpackage per stage, in the order a note travels:

    core      settings, the user-facing error tree, text rules, progress lines
    reading   notes → Documents → Chunks (passages) and answer units; scopes and tags
    index     embedders, BM25, vector stores, versions on disk (or in Milvus), builds
    search    question (+ history, scope) → ranked Hits
    answer    Hits → a cited Answer: extractive, or an LLM backend with checked citations
    notes, cli, batch, evaluation
              on top: the notes folder for the UI, the command line, --batch files, `rag eval`

A stage imports only the stages above it in this list (tests/test_layout.py fails on an
upward import or a cycle), and nothing in ``rag`` imports ``ui`` except the CLI's ``serve``.
"""
__version__ = "0.1.0"
