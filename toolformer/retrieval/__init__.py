"""Passage retrieval, the library under the WikiSearch and QA tools.

- :mod:`.corpus`: passage corpora (gensim's Wikipedia sample, a user's file or dataset);
- :mod:`.passages`: a corpus's passages cached as a parquet table;
- :mod:`.terms`: the BM25 tokenizer (stopwords, S-stemmer);
- :mod:`.bm25`: the BM25 index (``bm25s``); :mod:`.dense`: MiniLM embeddings in faiss;
- :mod:`.fusion`: reciprocal rank fusion and top-k; :mod:`.cache`: the index cache's files;
- :mod:`.search`: :class:`~.search.PassageSearch`, which ranks passages by the configured mode;
- :mod:`.snippets`: the part of a passage shown in a result.

Importing the package loads nothing heavy: numpy, bm25s, faiss and sentence-transformers are
imported where they are used.
"""
