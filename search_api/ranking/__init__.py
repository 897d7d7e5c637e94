"""Ranking: which encoder ranks which rows, fusion of the evidence, reranking, grouping and paging.

Pure functions over row numbers of one generation; the searcher calls them in order
(candidates -> fuse -> rerank -> group -> page)."""
