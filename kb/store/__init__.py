"""Persistence: the SQLite catalog, the dense (hnswlib) and lexical (BM25) indexes, and their atomic commit."""

from kb.store.knowledge_base import (  # noqa: F401
    Changes,
    DocumentUpdate,
    EmbeddingInfo,
    KnowledgeBase,
    KnowledgeBaseBusy,
    KnowledgeBaseError,
    KnowledgeBaseMissing,
    check_model,
    keeps_multilingual,
    tokenizer_version,
)
