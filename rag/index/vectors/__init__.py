"""Dense vector indexes behind one small interface (base.py), chosen by factory.py.

FAISS in the index folder is the default (faiss_index.py); Milvus (Milvus Lite file or a
Milvus server) is the second store (milvus_index.py). See base.VectorIndex for the contract.
"""
from rag.index.vectors.base import VectorIndex, VectorStoreUnavailable
from rag.index.vectors.factory import build_vector_index, check_vectors, discard_vectors, load_vector_index, publish_vectors, sweep_vectors

__all__ = ["VectorIndex", "VectorStoreUnavailable", "build_vector_index", "load_vector_index",
           "publish_vectors", "check_vectors", "discard_vectors", "sweep_vectors"]
