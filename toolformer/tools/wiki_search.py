"""WikiSearch: the best snippets of a passage corpus for a search term (the paper's BM25 over
Wikipedia; also dense MiniLM + faiss, or both fused).

A thin tool over :class:`toolformer.retrieval.search.PassageSearch`: the options are its
:class:`~toolformer.retrieval.search.SearchConfig`, ``setup()`` loads (or builds and caches) the
index, and a call ranks passages, leaves out the annotated document
(:mod:`toolformer.tools.self_retrieval`) and joins the passages' snippets.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from toolformer.grammar import TextArgs
from toolformer.retrieval.corpus import Passage
from toolformer.retrieval.search import PassageSearch, SearchConfig
from toolformer.retrieval.snippets import clip, snippet
from toolformer.retrieval.terms import tokenize
from toolformer.tools.base import (
    RETRIEVAL_SETTINGS,
    Tool,
    ToolContext,
    ToolError,
    ToolInputError,
    ToolOutput,
    load_prompt,
)
from toolformer.tools.self_retrieval import (
    SELF_EXCLUDED,
    SelfExclusion,
    search_excluding,
    with_notes,
)


class WikiSearch(Tool):
    """Search a Wikipedia passage corpus and return the best snippets, most relevant first."""

    name = "WikiSearch"
    arg_grammar = TextArgs(max_bytes=120)  # a search query
    argument_name = "query"  # its parameter in a JSON schema (toolformer export --format chat)
    description = (
        "Searches Wikipedia (BM25 over passages) and returns short snippets that "
        "match the search term."
    )
    prompt = load_prompt("wiki_search.txt").rstrip("\n")
    annotation = RETRIEVAL_SETTINGS
    example_args = "Fishing Reel Types"
    options_class = SearchConfig
    setup_at_start = True  # the index is built before calls run under the executor's timeout
    # the result's shape only: corpus, cache_dir and dense_model name files and models
    manifest_safe_options = frozenset({"top_k", "snippet_chars", "max_chars"})

    def __init__(
        self,
        corpus: Optional[str] = None,
        mode: str = "bm25",
        top_k: int = 3,
        cache_dir: Optional[str] = None,
        config: Optional[SearchConfig] = None,
        **options: Any,
    ):
        if config is None:
            options = dict(corpus=corpus, mode=mode, top_k=top_k, cache_dir=cache_dir, **options)
        self.config = self.build_config(options, base=config)
        self.searcher = PassageSearch(self.config)

    def _setup(self) -> None:
        self.searcher.prepare()

    @property
    def passages(self) -> List[Passage]:
        return self.searcher.passages

    @property
    def timings(self) -> Dict[str, float]:
        """Seconds of the last load or build of each part (passages, bm25_load, ...)."""
        return self.searcher.timings

    # -- searching ------------------------------------------------------------------------
    def search(
        self, query: str, k: Optional[int] = None, exclude: Optional[SelfExclusion] = None
    ) -> List[Tuple[Passage, float]]:
        """The ``k`` (default ``top_k``) best passages with their scores, best first, none of
        them left out by ``exclude`` (the annotated document, see :meth:`search_excluding`)."""
        return self.search_excluding(query, k, exclude)[0]

    def search_excluding(
        self, query: str, k: Optional[int] = None, exclude: Optional[SelfExclusion] = None
    ) -> Tuple[List[Tuple[Passage, float]], int]:
        """:meth:`search` and the number of passages ``exclude`` left out ahead of the results
        (:func:`~toolformer.tools.self_retrieval.search_excluding`: excluded before the cut to
        ``k``, so ``k`` results still come back when the corpus has them)."""
        query = (query or "").strip()
        if not query:
            raise ToolInputError(
                "WikiSearch needs a search term, e.g. WikiSearch(Fishing Reel Types)"
            )
        self.setup()
        k = k or self.config.top_k
        return search_excluding(
            lambda n: self.searcher.search(query, n), k, exclude, len(self.passages)
        )

    def snippet(self, passage: Passage, query: str) -> str:
        """The part of ``passage`` shown for ``query``
        (:func:`toolformer.retrieval.snippets.snippet`)."""
        return snippet(passage, query, self.config.snippet_chars, self.config.stem)

    def check_call(self, args: str) -> Optional[str]:
        """A search term with at least one searchable word (``WikiSearch(the)`` finds nothing)."""
        reason = super().check_call(args)
        if reason is None and not tokenize(self.parse_args(args), self.config.stem):
            reason = f"WikiSearch needs a search term with a searchable word, not {args.strip()!r}"
        return reason

    def context_key(self, context: Optional[ToolContext]) -> Any:
        """The annotated document (left out of the results); None at generation time."""
        return getattr(context, "document", None)

    def run(self, args: str, context: Optional[ToolContext] = None) -> str:
        query = self.parse_args(args)
        exclude = SelfExclusion.from_context(context)
        hits, dropped = self.search_excluding(query, self.config.top_k, exclude)
        if not hits:
            raise with_notes(
                ToolError(f"WikiSearch found nothing for {query!r}"), {SELF_EXCLUDED: dropped}
            )
        parts: List[str] = []
        total = 0
        for passage, _ in hits:
            text = self.snippet(passage, query)
            if text in parts:
                continue
            extra = len(text) + (3 if parts else 0)
            if parts and total + extra > self.config.max_chars:
                break
            parts.append(text)
            total += extra
        return ToolOutput(clip(" | ".join(parts), self.config.max_chars), {SELF_EXCLUDED: dropped})

    def __repr__(self) -> str:
        c = self.config
        return f"WikiSearch(corpus={c.corpus!r}, mode={c.mode!r}, top_k={c.top_k})"
