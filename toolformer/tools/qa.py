"""QA: a retrieval-augmented reader (the paper used Atlas) that answers a question in a few words.

The question goes to a :class:`~toolformer.tools.wiki_search.WikiSearch` (the run's WikiSearch
when :func:`~toolformer.tools.assembly.create_tools` builds QA); a causal LM reads the best
passages and the question and answers greedily, stopping at the end of a line or sentence. The
LM and the index load in ``setup()`` (before the first call, or at it).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence, Tuple

from toolformer.errors import UserError
from toolformer.grammar import TextArgs
from toolformer.retrieval.corpus import Passage
from toolformer.retrieval.terms import tokenize
from toolformer.text.split import split_sentences
from toolformer.tools.base import (
    RETRIEVAL_SETTINGS,
    Tool,
    ToolContext,
    ToolError,
    ToolOutput,
    load_prompt,
)
from toolformer.tools.self_retrieval import (
    SELF_EXCLUDED,
    SelfExclusion,
    search_excluding,
    with_notes,
)

ANSWER_CACHE = 4096  # answers kept per (question, passages) read
READER_INSTRUCTION = (
    "Read the passages and answer the question with a short phrase of a few words, "
    "taken from the passages. Do not write a full sentence."
)


@dataclass
class QAConfig:
    """Options of :class:`QA`: the reader LM, how much it reads and how long it may answer."""

    model: str = field(
        default="smollm2-135m", metadata={"help": "reader LM: an alias, folder or HF id"}
    )
    dtype: str = field(default="fp32", metadata={"help": "reader dtype: fp32, bf16 or fp16"})
    passages: int = field(default=3, metadata={"help": "retrieved passages the reader sees"})
    passage_words: int = field(
        default=60,
        metadata={"help": "words of each passage the reader sees (around the best sentence)"},
    )
    max_new_tokens: int = field(default=24, metadata={"help": "longest answer in tokens"})
    max_answer_words: int = field(
        default=12, metadata={"help": "the answer is cut to this many words"}
    )
    corpus: Optional[str] = field(
        default=None, metadata={"help": "corpus of the WikiSearch built when none is injected"}
    )
    retriever: str = field(
        default="bm25", metadata={"help": "mode of that WikiSearch: bm25, dense, hybrid"}
    )
    use_chat_template: Optional[bool] = field(
        default=None, metadata={"help": "None: use the tokenizer's chat template when it has one"}
    )


_SENTENCE_END = re.compile(r"(?<=[^\sA-Z.])[.!?](?=\s|$)")
_PREFIX = re.compile(
    r"^(?:the\s+)?(?:short\s+|final\s+)?answer(?:\s+to\s+(?:the|this|your)\s+question)?"
    r"(?:\s+is)?\s*(?:[:\-]\s*|\s+(?=\S))",
    re.IGNORECASE,
)
_RELATIVE = re.compile(r",\s*(?:which|who|whose|where)\b.*$", re.IGNORECASE)
_CITATION = re.compile(r"^\[\d+\]\s*")
_AGENT = re.compile(r"^[a-z]+\s+by\s+(?=\S)")  # "written by George Orwell" -> "George Orwell"
_OPEN_PAREN = re.compile(r"\s*\([^)]*$")  # a parenthesis cut off by the token limit
_COPULA = re.compile(r"\s(?:is|was|are|were)\s", re.IGNORECASE)


def _content(text: str) -> set:
    return set(tokenize(text))


def clean_answer(
    text: str, question: str = "", titles: Sequence[str] = (), max_words: int = 12
) -> str:
    """A short answer from a reader's generation.

    Keeps the first line up to its first sentence end; drops labels ("The answer is:"), a copied
    passage marker or title ("[2] Aardvark:"), a restated question ("The capital of X is
    Montgomery" -> "Montgomery"), a leading "written by", a trailing relative clause (", which
    ...") or unclosed parenthesis; an answer that only repeats the question becomes empty.
    """
    text = text.strip().split("\n", 1)[0].strip()
    m = _SENTENCE_END.search(text)
    if m:
        text = text[: m.start()]
    text = _CITATION.sub("", _PREFIX.sub("", text.strip())).strip()
    for title in titles:
        if title and text.lower().startswith(title.lower() + ":"):
            text = text[len(title) + 1 :].strip()
            break
    asked = _content(question)
    if asked:
        parts = _COPULA.split(text, maxsplit=1)
        head = _content(parts[0])
        if len(parts) == 2 and parts[1].strip() and len(head & asked) * 2 >= len(head):
            text = parts[1]
        if _content(text) and _content(text) <= asked:
            return ""  # an echo of the question is no answer
    text = _RELATIVE.sub("", text)  # "Anchorage, which is also ..." -> "Anchorage"
    text = _AGENT.sub("", text.replace("\ufffd", ""))  # and half a multi-byte character
    text = _OPEN_PAREN.sub("", text)
    text = text.strip(" \"'`*").rstrip(",;:").strip()
    words = text.split()
    if len(words) > max_words:
        text = " ".join(words[:max_words])
    return text


def focus(text: str, question: str, words: int) -> str:
    """The part of a passage a small reader should see: the sentence sharing most terms with the
    question, widened by its neighbours (following first) up to ``words`` words."""
    if len(text.split()) <= words:
        return text
    sentences = split_sentences(text) or [text]
    asked = _content(question)
    best = max(range(len(sentences)), key=lambda i: (len(asked & _content(sentences[i])), -i))
    lo, hi = best, best + 1
    count = len(sentences[best].split())
    while True:
        grown = False
        for j in (hi, lo - 1):
            if 0 <= j < len(sentences) and not (lo <= j < hi):
                n = len(sentences[j].split())
                if count + n <= words:
                    lo, hi = min(lo, j), max(hi, j + 1)
                    count += n
                    grown = True
        if not grown:
            break
    out = " ".join(sentences[lo:hi])
    tokens = out.split()
    return " ".join(tokens[:words]) if len(tokens) > words else out


class QA(Tool):
    """Answer a question from retrieved Wikipedia passages with a small reader LM."""

    name = "QA"
    arg_grammar = TextArgs(max_bytes=120)  # a question
    argument_name = "question"  # its parameter in a JSON schema (toolformer export --format chat)
    description = (
        "Answers a natural-language question with a short phrase, reading the "
        "Wikipedia passages that a search finds for it."
    )
    prompt = load_prompt("qa.txt").rstrip("\n")
    annotation = RETRIEVAL_SETTINGS
    example_args = "Where was Marie Curie born?"
    options_class = QAConfig
    setup_at_start = True  # the reader and the index load before calls run under a timeout
    # how much the reader reads and answers: model and corpus name a model and a file
    manifest_safe_options = frozenset(
        {"passages", "passage_words", "max_new_tokens", "max_answer_words", "use_chat_template"}
    )

    def __init__(
        self,
        search: Any = None,
        model: Any = None,
        tokenizer: Any = None,
        config: Optional[QAConfig] = None,
        **options: Any,
    ):
        config = self.build_config(options, base=config)
        if isinstance(model, str):
            config.model = model
            model = None
        if model is not None and tokenizer is None:
            raise UserError("QA(model=<loaded model>) also needs tokenizer=<its tokenizer>")
        self.config = config
        self._search = search
        self._model = model
        self._tokenizer = tokenizer
        self._answers: "OrderedDict[Tuple[str, Tuple[str, ...]], str]" = OrderedDict()

    # -- parts, loaded by setup() ---------------------------------------------------------
    @property
    def search(self):
        """The retriever: the injected one, else a WikiSearch over ``config.corpus`` (made here,
        loaded in ``setup()``)."""
        if self._search is None:
            from toolformer.tools.wiki_search import WikiSearch

            self._search = WikiSearch(corpus=self.config.corpus, mode=self.config.retriever)
        return self._search

    def _setup(self) -> None:
        """Load the reader LM (unless one was injected) and the retriever's index."""
        if self._model is None:
            from toolformer.models import load_model

            self._model, self._tokenizer = load_model(self.config.model, dtype=self.config.dtype)
        setup = getattr(self.search, "setup", None)
        if setup is not None:
            setup()

    def reader(self) -> Tuple[Any, Any]:
        """``(model, tokenizer)`` of the reader LM (the tool is set up first unless one was
        injected)."""
        if self._model is None:
            self.setup()
        return self._model, self._tokenizer

    # -- answering ------------------------------------------------------------------------
    def retrieve(self, question: str, exclude: Optional[SelfExclusion] = None) -> List[Passage]:
        """The passages the reader sees, none of them left out by ``exclude``."""
        return self.retrieve_excluding(question, exclude)[0]

    def retrieve_excluding(
        self, question: str, exclude: Optional[SelfExclusion] = None
    ) -> Tuple[List[Passage], int]:
        """:meth:`retrieve` and how many passages ``exclude`` (the annotated document) left out
        ahead of them; an injected retriever without ``search_excluding`` is asked for more
        passages and filtered here, by the same rule."""
        k = self.config.passages
        search = self.search
        if hasattr(search, "search_excluding"):
            hits, dropped = search.search_excluding(question, k, exclude)
        else:
            hits, dropped = search_excluding(lambda n: search.search(question, n), k, exclude)
        return [p for p, _ in hits], dropped

    def build_prompt(
        self, question: str, passages: List[Passage], tokenizer: Any
    ) -> Tuple[str, bool]:
        """The reader's input and whether it is a chat turn: the passages, then the question, as
        a chat turn when the tokenizer has a template (instruct models), else ending ``Answer:``."""
        lines = []
        for i, p in enumerate(passages, 1):
            text = focus(p.text, question, self.config.passage_words)
            lines.append(f"[{i}] {p.title}: {text}" if p.title else f"[{i}] {text}")
        context = "\n".join(lines)
        use_chat = self.config.use_chat_template
        if use_chat is None:
            use_chat = bool(getattr(tokenizer, "chat_template", None))
        if use_chat:
            user = f"{READER_INSTRUCTION}\n\nPassages:\n{context}\n\nQuestion: {question}"
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
            )
            return text, True
        return (
            f"{READER_INSTRUCTION}\n\nPassages:\n{context}\n\nQuestion: {question}\nAnswer:",
            False,
        )

    def answer(self, question: str, passages: Optional[List[Passage]] = None) -> str:
        """A short answer to ``question`` (possibly empty if the reader says nothing usable)."""
        import torch

        if passages is None:
            passages = self.retrieve(question)
        model, tok = self.reader()
        prompt, is_chat = self.build_prompt(question, passages, tok)
        # a chat template writes its own special tokens
        enc = tok(prompt, return_tensors="pt", add_special_tokens=not is_chat)
        device = next(model.parameters()).device
        enc = {k: v.to(device) for k, v in enc.items()}
        n = enc["input_ids"].shape[1]
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=self.config.max_new_tokens,
                do_sample=False,
                stopping_criteria=_stop_at_line_or_sentence(tok, n),
                pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
            )
        text = tok.decode(out[0, n:], skip_special_tokens=True)
        return clean_answer(
            text, question, [p.title for p in passages], self.config.max_answer_words
        )

    def context_key(self, context: Optional[ToolContext]) -> Any:
        """The annotated document (left out of the passages); None at generation time."""
        return getattr(context, "document", None)

    def run(self, args: str, context: Optional[ToolContext] = None) -> str:
        question = self.parse_args(args)
        passages, dropped = self.retrieve_excluding(question, SelfExclusion.from_context(context))
        notes = {SELF_EXCLUDED: dropped}
        if not passages:
            raise with_notes(ToolError(f"QA found no passage about {question!r}"), notes)
        # the executor caches per annotated document and call position; the same question
        # over the same passages is read once
        key = (question, tuple(p.id for p in passages))
        answer = self._answers.get(key)
        if answer is None:
            answer = self.answer(question, passages)
            # two threads asking the same question at once both read it: harmless
            self._answers[key] = answer
            while len(self._answers) > ANSWER_CACHE:
                self._answers.popitem(last=False)
        if not answer:
            raise with_notes(ToolError(f"QA could not answer {question!r}"), notes)
        return ToolOutput(answer, notes)

    def __repr__(self) -> str:
        return f"QA(model={self.config.model!r}, passages={self.config.passages})"


_ANSWER_DONE = re.compile(r"(?<=[^\sA-Z.])[.!?]\s")


def _stop_at_line_or_sentence(tokenizer: Any, prompt_len: int):
    """Stopping criteria: the answer has a line break or a finished sentence (saves tokens)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopAtLineOrSentence(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            done = []
            for row in input_ids:
                text = tokenizer.decode(row[prompt_len:], skip_special_tokens=True).lstrip()
                done.append("\n" in text or bool(_ANSWER_DONE.search(text)))
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopAtLineOrSentence()])
