"""notes-rag: answer questions from your own notes, with cited sources."""
__version__ = "0.1.0"
