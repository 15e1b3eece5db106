"""kb: a local-first RAG knowledge base for PDFs, slides and notes, in Chinese and English."""

__version__ = "0.1.0"
