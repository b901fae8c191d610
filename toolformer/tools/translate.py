"""The MT tool: translate a text in any language into English.

The paper used NLLB-600M. Two backends here, chosen from the model's config:

- a causal LM with a few-shot translation prompt (default: Gemma-3-270m, offline alias
  ``gemma3-270m``). The prompt's KV cache is computed once and reused for every call; decoding is
  greedy, stops at the first newline, and has a token budget proportional to the input.
- any Hugging Face encoder-decoder translation model by path (NLLB, M2M100, Marian, ...). For
  NLLB and M2M100 the detected source language is set on the tokenizer and English is forced as
  the first generated token.

Text that is already English comes back unchanged without a model call. The model is loaded on
the first call that needs it.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from toolformer import models
from toolformer.grammar import TextArgs
from toolformer.kv_cache import cache_kwargs, returned_cache
from toolformer.paths import torch_dtype
from toolformer.text.langdetect import LANGUAGE_NAMES, UNKNOWN, detect_language
from toolformer.tools.base import (
    COMPUTE_SETTINGS,
    Tool,
    ToolContext,
    ToolError,
    ToolInputError,
    load_prompt,
)

DEFAULT_MT_MODEL = "gemma3-270m"

# Few-shot translation prompt for causal LMs: several languages and scripts, one per line pair.
FEW_SHOT_PROMPT = """Translate each text into English.

French: Le musée est fermé le lundi et les jours fériés.
English: The museum is closed on Mondays and public holidays.

German: Wir haben gestern einen langen Spaziergang im Wald gemacht.
English: Yesterday we took a long walk in the forest.

Spanish: ¿Dónde está la estación de tren más cercana?
English: Where is the nearest train station?

Italian: La pizza è nata a Napoli nel diciottesimo secolo.
English: Pizza was born in Naples in the eighteenth century.

Russian: Я не знаю, где он живёт.
English: I don't know where he lives.

Chinese: 我明天要去北京看我的朋友。
English: Tomorrow I am going to Beijing to see my friend.

"""

# ISO 639-1 (as detect_language returns it) -> NLLB-200 language code.
NLLB_CODES: Dict[str, str] = {
    "en": "eng_Latn",
    "fr": "fra_Latn",
    "de": "deu_Latn",
    "es": "spa_Latn",
    "it": "ita_Latn",
    "pt": "por_Latn",
    "nl": "nld_Latn",
    "ru": "rus_Cyrl",
    "uk": "ukr_Cyrl",
    "bg": "bul_Cyrl",
    "sr": "srp_Cyrl",
    "el": "ell_Grek",
    "ar": "arb_Arab",
    "fa": "pes_Arab",
    "ur": "urd_Arab",
    "he": "heb_Hebr",
    "zh": "zho_Hans",
    "ja": "jpn_Jpan",
    "ko": "kor_Hang",
    "hi": "hin_Deva",
    "bn": "ben_Beng",
    "ta": "tam_Taml",
    "th": "tha_Thai",
    "ka": "kat_Geor",
    "hy": "hye_Armn",
}

_WS = re.compile(r"\s+")


@dataclass
class MTConfig:
    """Settings of the MT tool (the paper's tool is NLLB-600M; ours defaults to Gemma-3-270m)."""

    model: str = field(
        default=DEFAULT_MT_MODEL,
        metadata={
            "help": "Model alias, local folder or HF id: a causal LM (few-shot prompt) or an "
            "encoder-decoder translation model such as NLLB or Marian."
        },
    )
    dtype: str = field(default="fp32", metadata={"help": "Weights dtype: fp32, bf16 or fp16."})
    device: Optional[str] = field(
        default=None, metadata={"help": "torch device; default: cuda when available, else cpu."}
    )
    budget_ratio: float = field(
        default=2.0,
        metadata={"help": "New-token budget per source token (English output is rarely longer)."},
    )
    budget_extra: int = field(
        default=8, metadata={"help": "New tokens allowed on top of budget_ratio * source tokens."}
    )
    max_new_tokens: int = field(default=256, metadata={"help": "Hard cap on new tokens per call."})
    max_input_tokens: int = field(
        default=400, metadata={"help": "Longer inputs are rejected (split them into sentences)."}
    )
    english_threshold: float = field(
        default=0.3,
        metadata={"help": "Detected English at this confidence or more is returned unchanged."},
    )
    cache_prompt: bool = field(
        default=True,
        metadata={"help": "Reuse the few-shot prompt's KV cache across calls (causal LMs)."},
    )


@dataclass(frozen=True)
class Translation:
    """One translation and how it was made."""

    text: str
    source_lang: str  # ISO 639-1 code, or "und"
    confidence: float  # of the language detection
    skipped: bool = False  # True: the input was English (or had no letters) and came back as is
    new_tokens: int = 0
    budget: int = 0
    seconds: float = 0.0


def _language_name(lang: str) -> str:
    # For an undetected language "Foreign" works better than "Text" or "Source", after which
    # Gemma tends to copy the input.
    return LANGUAGE_NAMES.get(lang, "Foreign")


class _CausalBackend:
    """Few-shot translation with a decoder-only LM; greedy, stops at a newline."""

    def __init__(self, model: Any, tokenizer: Any, config: MTConfig):
        self.model, self.tok, self.config = model, tokenizer, config
        self._prefix_ids = None
        self._prefix_cache = None
        self._newline: Dict[int, bool] = {}
        self._keep_kwargs: Optional[Dict[str, int]] = None
        ends = (tokenizer.eos_token_id, tokenizer.pad_token_id)
        self._stop_ids = {i for i in ends if i is not None}

    def _forward(self, input_ids, cache):
        """One forward pass; only the last position's logits are computed when the model allows
        (Gemma's 262k-word output layer would otherwise dominate the prompt's cost)."""
        if self._keep_kwargs is None:
            params = inspect.signature(self.model.forward).parameters
            self._keep_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in params else {}
        return self.model(
            input_ids=input_ids,
            use_cache=True,
            **cache_kwargs(self.model, cache),
            **self._keep_kwargs,
        )

    def _device(self):
        return next(self.model.parameters()).device

    def _ends_line(self, token_id: int) -> bool:
        hit = self._newline.get(token_id)
        if hit is None:
            hit = self._newline[token_id] = "\n" in self.tok.decode([token_id])
        return hit

    def _prefix(self):
        import torch

        if self._prefix_ids is None:
            ids = self.tok(FEW_SHOT_PROMPT, return_tensors="pt").input_ids.to(self._device())
            self._prefix_ids = ids
            if self.config.cache_prompt:
                with torch.no_grad():
                    self._prefix_cache = returned_cache(self._forward(ids, None))
        return self._prefix_ids

    def count_tokens(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False).input_ids)

    def translate(self, text: str, lang: str, budget: int) -> Tuple[str, int]:
        import torch

        prefix = self._prefix()
        query = f"{_language_name(lang)}: {text}\nEnglish:"
        suffix = self.tok(query, add_special_tokens=False, return_tensors="pt").input_ids
        suffix = suffix.to(prefix.device)
        if self._prefix_cache is not None:
            cache = copy.deepcopy(self._prefix_cache)
            feed = suffix
        else:
            cache = None
            feed = torch.cat([prefix, suffix], dim=1)
        generated = []
        with torch.no_grad():
            out = self._forward(feed, cache)
            for _ in range(budget):
                next_id = int(out.logits[0, -1].argmax())
                if next_id in self._stop_ids or self._ends_line(next_id):
                    break
                generated.append(next_id)
                if len(generated) == budget:
                    break
                step = torch.tensor([[next_id]], device=prefix.device)
                out = self._forward(step, returned_cache(out))
        return self.tok.decode(generated, skip_special_tokens=True), len(generated)


class _Seq2SeqBackend:
    """An encoder-decoder translation model: NLLB / M2M100 get source and target language codes."""

    def __init__(self, model: Any, tokenizer: Any, config: MTConfig):
        self.model, self.tok, self.config = model, tokenizer, config
        self._vocab = vocab = tokenizer.get_vocab()  # built once: NLLB's has 256k entries
        if "eng_Latn" in vocab:
            self.kind = "nllb"
        elif hasattr(tokenizer, "get_lang_id") and "__en__" in vocab:
            self.kind = "m2m100"
        else:
            self.kind = "plain"  # Marian and other single-direction models: just translate

    def count_tokens(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False).input_ids)

    def _language_kwargs(self, lang: str) -> Dict[str, Any]:
        if self.kind == "nllb":
            code = NLLB_CODES.get(lang)
            if code is not None and code in self._vocab:
                self.tok.src_lang = code
            return {"forced_bos_token_id": self.tok.convert_tokens_to_ids("eng_Latn")}
        if self.kind == "m2m100":
            if f"__{lang}__" in self._vocab:
                self.tok.src_lang = lang
            return {"forced_bos_token_id": self.tok.get_lang_id("en")}
        return {}

    def translate(self, text: str, lang: str, budget: int) -> Tuple[str, int]:
        import torch

        kwargs = self._language_kwargs(lang)
        device = next(self.model.parameters()).device
        enc = self.tok(text, return_tensors="pt").to(device)
        with torch.no_grad():
            out = self.model.generate(
                **enc, max_new_tokens=budget, do_sample=False, num_beams=1, **kwargs
            )
        ids = out[0].tolist()
        start = getattr(self.model.generation_config, "decoder_start_token_id", None)
        if ids and ids[0] == start:
            ids = ids[1:]  # the decoder's start token is not generated text
        new_tokens = len(ids)
        return self.tok.decode(ids, skip_special_tokens=True), new_tokens


class MT(Tool):
    """Machine translation into English (paper: NLLB-600M; here a small LM or any HF MT model).

    ``MT()`` uses Gemma-3-270m with a few-shot prompt; ``MT(model="/path/to/nllb")`` any
    encoder-decoder translation model; ``MT(model=model, tokenizer=tokenizer)`` an already loaded
    one. Keyword options override :class:`MTConfig` fields (e.g. ``MT(dtype="bf16")``).
    """

    name = "MT"
    arg_grammar = TextArgs(max_bytes=200)  # the text to translate
    argument_name = "text"  # its parameter in a JSON schema (toolformer export --format chat)
    description = (
        "Translates a text in any language into English, e.g. MT(Le chat est sur la table.)"
    )
    prompt = load_prompt("mt.txt").rstrip("\n")
    annotation = COMPUTE_SETTINGS
    example_args = "Le chat est sur la table."
    options_class = MTConfig
    # the translation budget and when to translate: model and device are the user's to choose
    manifest_safe_options = frozenset(
        {"budget_ratio", "budget_extra", "max_new_tokens", "max_input_tokens", "english_threshold"}
    )

    def __init__(
        self,
        model: Any = None,
        tokenizer: Any = None,
        *,
        config: Optional[MTConfig] = None,
        **options: Any,
    ):
        if isinstance(model, str):
            options["model"] = model
        self.config = self.build_config(options, base=config)
        self._model_obj = None if model is None or isinstance(model, str) else model
        if self._model_obj is not None and tokenizer is None:
            raise ToolInputError("MT: pass the tokenizer together with a loaded model")
        self._tokenizer = tokenizer
        self._backend: Any = None
        self._load_error: Optional[str] = None
        # one translation at a time: a call sets the tokenizer's source language (NLLB, M2M100)
        # and reuses the backend's prompt cache
        self._translating = threading.Lock()

    # -- loading ------------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        """Whether the model is in memory (``setup()``, or the first call that needs it)."""
        return self._backend is not None

    def _setup(self) -> None:
        """Load the model (unless one was injected) and pick its backend; a failed load is
        remembered and reported on every later call instead of being retried."""
        if self._load_error is not None:
            raise ToolError(self._load_error)
        try:
            model, tok = self._model_obj, self._tokenizer
            if model is None:
                model, tok = self._load(self.config)
        except Exception as exc:  # noqa: BLE001 - reported once, then on every call
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            self._load_error = f"MT could not load model {self.config.model!r}: {first}"
            raise ToolError(self._load_error) from exc
        seq2seq = getattr(model.config, "is_encoder_decoder", False)
        self._backend = (_Seq2SeqBackend if seq2seq else _CausalBackend)(model, tok, self.config)

    @staticmethod
    def _load(config: MTConfig) -> Tuple[Any, Any]:
        import torch

        device = config.device or ("cuda" if torch.cuda.is_available() else None)
        target = config.model
        if target not in models.ALIASES and target.lower() not in models.ALIASES:
            from transformers import AutoConfig

            hf_config = models.load_pretrained(AutoConfig, target, target, weights=False)
            if getattr(hf_config, "is_encoder_decoder", False):
                from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

                tok = models.load_pretrained(AutoTokenizer, target, target, weights=False)
                model = models.load_pretrained(
                    AutoModelForSeq2SeqLM, target, target, dtype=torch_dtype(config.dtype)
                )
                if device:
                    model.to(device)
                return model.eval(), tok
        return models.load_model(target, dtype=config.dtype, device=device)

    # -- translation --------------------------------------------------------------------------
    def budget_for(self, n_source_tokens: int) -> int:
        """New-token budget for an input of ``n_source_tokens`` tokens."""
        c = self.config
        budget = math.ceil(c.budget_ratio * n_source_tokens) + c.budget_extra
        return max(1, min(c.max_new_tokens, budget))

    def translate(self, text: str, source_lang: Optional[str] = None) -> Translation:
        """Translate ``text`` into English; English (or letter-free) text comes back unchanged."""
        start = time.perf_counter()
        original = text.strip()
        text = _WS.sub(" ", original)  # the prompt is line-based
        if not text:
            raise ToolInputError(f"MT needs a text to translate, e.g. MT({self.example_args})")
        if source_lang:
            lang, confidence = source_lang, 1.0
        else:
            lang, confidence = detect_language(text)
        has_letters = any(ch.isalpha() for ch in text)
        if not has_letters or (lang == "en" and confidence >= self.config.english_threshold):
            return Translation(
                original, lang, confidence, skipped=True, seconds=time.perf_counter() - start
            )
        backend = self.setup()._backend
        with self._translating:
            n_source = backend.count_tokens(text)
            if n_source > self.config.max_input_tokens:
                raise ToolInputError(
                    f"MT input is {n_source} tokens, over the limit of "
                    f"{self.config.max_input_tokens}; translate it sentence by sentence"
                )
            budget = self.budget_for(n_source)
            output, new_tokens = backend.translate(text, lang, budget)
        output = _WS.sub(" ", output).strip()
        if not output:
            raise ToolError("MT produced an empty translation")
        return Translation(
            output, lang, confidence, False, new_tokens, budget, time.perf_counter() - start
        )

    def run(self, args: str, context: Optional[ToolContext] = None) -> str:
        return self.translate(self.parse_args(args)).text


__all__ = ["FEW_SHOT_PROMPT", "MT", "MTConfig", "NLLB_CODES", "UNKNOWN", "Translation"]
