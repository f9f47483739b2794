"""Answers: ``Hit``s become a cited ``Answer``, streamed.

- ``chat``: the ``ChatEngine``: retrieval, then an LLM or the extractive answer, as events.
- ``prompting``: grounded prompts and the citation checks of a generated answer.
- ``extractive``: the answer in the notes' own words, without any LLM.
- ``degeneration``: a generated answer that loops is cut and replaced.
- ``llm/``: the ``ChatModel`` backends (OpenAI-compatible/vLLM, llama.cpp) and their choice.

May import: ``rag.core``, ``rag.reading``, ``rag.index``, ``rag.search``.
"""
