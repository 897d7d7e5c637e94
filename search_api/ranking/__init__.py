"""Ranking: which encoder ranks which rows, fusion of the evidence, reranking, grouping and paging.

Functions over row numbers of one generation, which the searcher calls in order: candidates (`routing`,
`evidence`) -> fuse (`fusion`) -> rerank (`reranking`) -> group and page (`grouping`). `types` holds the
values passed between them."""
