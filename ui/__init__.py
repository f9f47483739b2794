"""The web UI: a thin Gradio shell over the `rag` library (see ui/app.py)."""
