"""Opening a published generation for reading; kept as an import path, the code is `indexer.generation.reader`."""

from indexer.generation.reader import DenseIndex, DocumentInfo, GenerationReader, PassageRecord, open_published

__all__ = ["DenseIndex", "DocumentInfo", "GenerationReader", "PassageRecord", "open_published"]
