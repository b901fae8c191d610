"""Fast, dependency-free language identification and foreign-chunk detection.

``detect_language`` decides by script first (Cyrillic, Greek, Arabic, Hebrew, CJK, Hangul,
Devanagari, ...) and, for Latin-script text, by compact profiles written into this module:
function words per language, diacritic cues and a few distinctive character n-grams.

``find_foreign_spans`` serves the annotation pipeline's MT heuristic (paper: MT only where a
non-English chunk of >= 10 tokens sits in English text). It slides a window of ``min_tokens``
words over the text and flags windows dominated by another language's function words (or by a
non-Latin script), then merges and trims them. Names such as "Jean-Paul Sartre", "Los Angeles"
or "Charles de Gaulle" do not trigger it: capitalised function words in mid-sentence, name
particles (de, la, van, von, ...) and runs of capitalised words do not count as evidence.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections import Counter
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

UNKNOWN = "und"  # ISO 639 code for "undetermined"

LANGUAGE_NAMES: Dict[str, str] = {
    "en": "English",
    "fr": "French",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "la": "Latin",
    "ru": "Russian",
    "uk": "Ukrainian",
    "bg": "Bulgarian",
    "sr": "Serbian",
    "el": "Greek",
    "ar": "Arabic",
    "fa": "Persian",
    "ur": "Urdu",
    "he": "Hebrew",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "hi": "Hindi",
    "bn": "Bengali",
    "ta": "Tamil",
    "th": "Thai",
    "ka": "Georgian",
    "hy": "Armenian",
}

# --------------------------------------------------------------------------- profiles

# Frequent function words per language. The English list also holds a few common English words
# that are function words elsewhere ("met", "door", "son", "con"): shared words are no evidence.
_STOPWORDS: Dict[str, str] = {
    "en": """the of and to in is was that for it with as on be at by this had not are but from or
        have an they which were her his she he been has their would there what all when who will
        more no if out so said up its about into than them can only other some could these also
        after first may then do any my we you our your i a me us how should where while those
        such between during each both through under over most did does am come non per him
        because being very here just against before until upon within without whose whom s t met
        door man hat son con ad um""",
    "fr": """le la les de des du un une et est en que qui dans pour pas ne sur au aux avec ce cette
        ces il elle ils elles nous vous je se sa son ses leur leurs par mais ou où été être sont
        était ont avait comme tout tous aussi très bien sans sous entre après avant depuis même
        lui y a on an me l d qu c j n s m peut fait cela dont nos notre votre""",
    "de": """der die das und ist nicht ein eine einen einem einer zu den dem des mit sich auf für im
        von auch es an als wie bei nach aus oder wird werden wurde wurden sind war hat haben ich
        er sie wir ihr noch nur aber über um vom zum zur so dass daß kann sein seine ihre schon
        sehr wenn durch dieser diese dieses man mehr unter gegen hier doch immer gibt
        keine kein zwischen was also will am in""",
    "es": """el la los las de del que y en un una unos unas es por con no se su sus para al lo como
        más pero sobre este esta estos estas ese esa entre cuando muy también ya hasta desde
        donde porque fue ha han había son está están ser le les nos mi yo él ella ellos todo
        todos otro otra hay puede cada durante según tiene me o a nuestro nuestra nuestros mucho
        aquí ni sino aunque así qué cómo""",
    "it": """il lo la i gli le di del della dei delle degli dello al alla ai alle da dal dalla in
        nel nella nei con su sul sulla per tra fra un una uno e è che non si ci anche come più ma o
        se sono essere stato ha hanno questo questa quello quella loro suo sua suoi molto dopo
        quando dove perché ancora ogni tutti tutto già l dell nell all dall sull a durante
        nostro nostra nostri mio mia senza sempre siamo abbiamo fu dai dagli sui nelle negli col
        cui erano""",
    "pt": """o a os as de do da dos das e é em no na nos nas um uma uns umas que para com não por
        pelo pela se mais mas como ao aos à seu sua seus suas ele ela eles elas foi ser são está
        estão tem têm também muito já quando onde isso isto este esta esse essa entre sobre até
        depois ou sem há eram pode nós eu você me durante nosso nossa nossos meu minha num numa
        pelos pelas""",
    "nl": """de het een en van in is dat die niet op te zijn met voor er aan als ook maar om bij
        door naar dan of nog uit wordt werd worden hij zij ze we wij ik je jij u hun haar deze dit
        wat kan zal heeft hebben had was waren over tot al geen meer veel hoe waar wel nu omdat
        tussen na onder zo mijn onze ons zich hem men toen zoals""",
    "la": """et in est non ad cum ut quod qui quae sed si de per esse sunt enim nec neque atque ac
        autem quam vel aut etiam tamen nam iam hoc haec hic eius ab sub ergo ille illa omnia
        omnes sicut nunc erat fuit ego tu nos vos me te se sibi quid quis ubi inter apud propter
        cuius quo qua eo ea""",
}

LATIN_LANGS: Tuple[str, ...] = tuple(_STOPWORDS)

_STOP_INDEX: Dict[str, FrozenSet[str]] = {}
for _lang, _words in _STOPWORDS.items():
    for _w in _words.split():
        _STOP_INDEX[_w] = _STOP_INDEX.get(_w, frozenset()) | {_lang}

# Words that also glue personal and place names together ("Charles de Gaulle", "Los Angeles",
# "Vincent van Gogh"): weak evidence that a chunk is written in that language.
NAME_PARTICLES: FrozenSet[str] = frozenset(
    "de del della di da das dos do du des la le les los las el y e van von vom der den ter ten zu "
    "zum zur al d l lo st san santa".split()
)

_GERMAN_ARTICLES = frozenset("der den das des".split())

# Per-occurrence diacritic cues (lower case).
_CHAR_CUES: Dict[str, Dict[str, float]] = {
    "ß": {"de": 1.0},
    "ä": {"de": 0.7},
    "ö": {"de": 0.7},
    "ü": {"de": 0.7},
    "ñ": {"es": 1.0},
    "¿": {"es": 1.0},
    "¡": {"es": 1.0},
    "ã": {"pt": 1.0},
    "õ": {"pt": 1.0},
    "ç": {"fr": 0.5, "pt": 0.5},
    "â": {"fr": 0.5, "pt": 0.5},
    "ê": {"fr": 0.6, "pt": 0.4},
    "ô": {"fr": 0.5, "pt": 0.5},
    "î": {"fr": 1.0},
    "û": {"fr": 1.0},
    "œ": {"fr": 1.0},
    "ÿ": {"fr": 1.0},
    "ë": {"fr": 0.3, "nl": 0.7},
    "ï": {"fr": 0.6, "nl": 0.4},
    "é": {"fr": 0.5, "es": 0.2, "pt": 0.2, "it": 0.1},
    "è": {"fr": 0.6, "it": 0.4},
    "à": {"fr": 0.4, "it": 0.4, "pt": 0.2},
    "ù": {"fr": 0.5, "it": 0.5},
    "ò": {"it": 1.0},
    "ì": {"it": 1.0},
    "á": {"es": 0.5, "pt": 0.5},
    "í": {"es": 0.6, "pt": 0.4},
    "ó": {"es": 0.6, "pt": 0.4},
    "ú": {"es": 0.6, "pt": 0.4},
}
_DIACRITICS = frozenset(_CHAR_CUES) - {"¿", "¡"}

# Distinctive character n-grams (spaces mark word edges in the padded, lower-cased text).
_NGRAM_CUES: Dict[str, Tuple[str, ...]] = {
    "en": (" th", "wh", "ght", "ould", "ing ", "ly ", "ness "),
    "de": ("sch", "ung ", "cht", "tz", "keit", "heit", "lich", "eit", " ge"),
    "nl": ("ij", "oe", "aa", "uu", "sch", "cht", "lijk", " ge"),
    "fr": ("eau", "aux ", "eux", "ais ", "ait ", "oi", "ment ", "qu'"),
    "es": ("ción", "ll", "rr", "ado ", "ada ", "ue", "dad "),
    "it": ("zione", "zioni", "gli", "cch", "zz", "tt", "ell", "ità "),
    "pt": ("ção", "ções", "lh", "nh", "ão", "ões", "dade "),
    "la": ("ae ", "orum ", "ibus ", "que ", "us ", "um "),
}
_CHAR_WEIGHT = 0.3
_NGRAM_WEIGHT = 0.15

# --------------------------------------------------------------------------- scripts

# (first code point, script); a code point belongs to the last range starting at or before it.
_SCRIPT_RANGES: List[Tuple[int, Optional[str]]] = sorted(
    [
        (0x0000, "Latin"),
        (0x02B0, None),
        (0x0370, "Greek"),
        (0x0400, "Cyrillic"),
        (0x0530, "Armenian"),
        (0x0590, "Hebrew"),
        (0x0600, "Arabic"),
        (0x0700, None),
        (0x0750, "Arabic"),
        (0x0780, None),
        (0x0900, "Devanagari"),
        (0x0980, "Bengali"),
        (0x0A00, None),
        (0x0B80, "Tamil"),
        (0x0C00, None),
        (0x0E00, "Thai"),
        (0x0E80, None),
        (0x10A0, "Georgian"),
        (0x1100, "Hangul"),
        (0x1200, None),
        (0x1E00, "Latin"),
        (0x1F00, "Greek"),
        (0x2000, None),
        (0x3040, "Kana"),
        (0x3100, None),
        (0x3130, "Hangul"),
        (0x3190, None),
        (0x31F0, "Kana"),
        (0x3200, None),
        (0x3400, "Han"),
        (0x4DC0, None),
        (0x4E00, "Han"),
        (0xA000, None),
        (0xAC00, "Hangul"),
        (0xD7B0, None),
        (0xF900, "Han"),
        (0xFB00, None),
        (0xFB1D, "Hebrew"),
        (0xFB50, "Arabic"),
        (0xFE00, None),
        (0xFE70, "Arabic"),
        (0xFF00, None),
        (0x20000, "Han"),
        (0x2FA20, None),
    ]
)
_RANGE_STARTS = [start for start, _ in _SCRIPT_RANGES]

_SCRIPT_LANG = {
    "Greek": "el",
    "Hebrew": "he",
    "Devanagari": "hi",
    "Bengali": "bn",
    "Tamil": "ta",
    "Thai": "th",
    "Georgian": "ka",
    "Armenian": "hy",
    "Hangul": "ko",
    "Han": "zh",
    "Kana": "ja",
}
# A CJK character carries about as much text as a short word; weigh it like several letters.
_SCRIPT_WEIGHT = {"Han": 3.0, "Kana": 2.0, "Hangul": 2.0}


def char_script(ch: str) -> Optional[str]:
    """The script of one character (None for punctuation, symbols and unsupported scripts)."""
    return _SCRIPT_RANGES[bisect_right(_RANGE_STARTS, ord(ch)) - 1][1]


_WORD_RE = re.compile(
    r"(?:\w|[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    r"\u0900-\u0963\u0971-\u09e5\u09f0-\u0be5\u0bf0-\u0e4f\u0e5a-\u0e7f])+"
)
_NOT_A_WORD_RE = re.compile(r"[\d_]")  # numbers, codes (A1C, N10) and identifiers are not words
_SPLIT_CHAR_RE = re.compile(  # Han and kana: one token per character
    r"[\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
)


def _words(text: str) -> List[Tuple[int, int, str]]:
    """Word tokens ``(start, end, word)``; each Han or kana character is a token of its own."""
    out: List[Tuple[int, int, str]] = []
    for m in _WORD_RE.finditer(text):
        word = m.group(0)
        if _NOT_A_WORD_RE.search(word):
            continue
        if word.isascii() or not _SPLIT_CHAR_RE.search(word):
            out.append((m.start(), m.end(), word))
            continue
        base = m.start()
        pos = 0
        for c in _SPLIT_CHAR_RE.finditer(word):
            if c.start() > pos:
                out.append((base + pos, base + c.start(), word[pos : c.start()]))
            out.append((base + c.start(), base + c.end(), c.group(0)))
            pos = c.end()
        if pos < len(word):
            out.append((base + pos, base + len(word), word[pos:]))
    return out


# --------------------------------------------------------------------------- detection

_MAX_CHARS = 10_000  # detection looks at this much text; more adds time, not accuracy


def _script_counts(text: str) -> Counter:
    counts: Counter = Counter()
    for ch, n in Counter(text).items():
        if not ch.isalpha():
            continue
        script = "Latin" if ch.isascii() else char_script(ch)
        if script is not None:
            counts[script] += n * _SCRIPT_WEIGHT.get(script, 1.0)
    return counts


def _cyrillic_language(text: str) -> Tuple[str, float]:
    low = text.lower()
    uk = sum(low.count(c) for c in "іїєґ")
    ru = sum(low.count(c) for c in "ыэё")
    sr = sum(low.count(c) for c in "јљњћђџ")
    hard = low.count("ъ")
    if sr > max(uk, ru):
        return "sr", 0.9
    if uk > ru:
        return "uk", 0.95
    if ru > 0:
        return "ru", 0.95
    if hard > 0:
        return "bg", 0.7
    return "ru", 0.6  # no telling letter: Russian is by far the most common


def _arabic_language(text: str) -> Tuple[str, float]:
    urdu = sum(text.count(c) for c in "ٹڈڑںے")
    persian = sum(text.count(c) for c in "پچژگکی")
    arabic = sum(text.count(c) for c in "كيةى")
    if urdu > 0 and urdu >= arabic:
        return "ur", 0.8
    if persian > arabic:
        return "fa", 0.85
    return "ar", 0.9 if arabic else 0.7


def latin_scores(text: str) -> Dict[str, float]:
    """Evidence per Latin-script language: function words, diacritics and n-gram cues."""
    scores = dict.fromkeys(LATIN_LANGS, 0.0)
    words = [w for _, _, w in _words(text)]
    for i, word in enumerate(words):
        if word == "I":  # the English pronoun; Italian "i" is lower case
            scores["en"] += 1.0
            continue
        lower = word.lower()
        langs = _STOP_INDEX.get(lower)
        if langs:
            share = 1.0 / len(langs)
            if (
                lower in NAME_PARTICLES
                and lower not in _GERMAN_ARTICLES  # German capitalises every noun
                and i + 1 < len(words)
                and words[i + 1][0].isupper()
            ):
                share *= 0.3  # "de Gaulle", "van Gogh", "Los Angeles": likely part of a name
            for lang in langs:
                scores[lang] += share
    low = text.lower()
    if not low.isascii():
        for ch, n in Counter(low).items():
            cue = _CHAR_CUES.get(ch)
            if cue:
                for lang, w in cue.items():
                    scores[lang] += _CHAR_WEIGHT * w * n
    padded = " " + re.sub(r"[^\w']+", " ", low) + " "
    for lang, grams in _NGRAM_CUES.items():
        hits = sum(padded.count(g) for g in grams)
        scores[lang] += _NGRAM_WEIGHT * hits
    return scores


def detect_language(text: str) -> Tuple[str, float]:
    """The language of ``text`` as ``(ISO 639-1 code, confidence in [0, 1])``.

    Latin-script: en fr de es it pt nl la, from function words, diacritics and n-grams.
    By script: ru uk bg sr (Cyrillic), el, ar fa ur, he, zh, ja (kana), ko, hi, bn, ta, th, ka,
    hy. Returns ``("und", 0.0)`` when the text has no letters or no usable evidence.
    """
    text = text[:_MAX_CHARS]
    counts = _script_counts(text)
    total = sum(counts.values())
    if total == 0:
        return UNKNOWN, 0.0
    script, n = counts.most_common(1)[0]
    share = n / total
    if script == "Han" and counts.get("Kana", 0) > 0.05 * n:
        script, share = "Kana", (n + counts["Kana"]) / total
    if script == "Kana":
        share = (counts["Kana"] + counts.get("Han", 0)) / total
    if script != "Latin":
        if script == "Cyrillic":
            lang, certainty = _cyrillic_language(text)
        elif script == "Arabic":
            lang, certainty = _arabic_language(text)
        else:
            lang, certainty = _SCRIPT_LANG[script], 1.0
        return lang, round(min(1.0, share) * certainty, 3)

    scores = latin_scores(text)
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    (best, s1), (_, s2) = ranked[0], ranked[1]
    if s1 < 0.5:
        return UNKNOWN, 0.0
    # share of the evidence, discounted when there is little of it and when the runner-up is close
    evidence = 1.0 - math.exp(-s1 / 2.0)
    margin = (s1 - s2) / s1
    confidence = share * evidence * (0.5 + 0.5 * margin)
    return best, round(confidence, 3)


def is_english(text: str, threshold: float = 0.3) -> bool:
    """Whether ``text`` is detected as English with at least ``threshold`` confidence."""
    lang, conf = detect_language(text)
    return lang == "en" and conf >= threshold


# --------------------------------------------------------------------------- foreign spans

# Punctuation that ends a sentence or clause, or opens/closes a quote or bracket.
_BOUNDARY_RE = re.compile(r"[.!?;:\"“”«»„()\[\]{}—–…\n`‘]|'\s|\s'|’\s")


# Single letters that are words: articles and conjunctions (Italian "e", Spanish "y", French
# "à", ...). Other letters count only when elided before an apostrophe (French "l'", "d'").
_LETTER_WORDS = frozenset("a à e è é o y i u".split())
_APOSTROPHES = "'’"


class _Tok:
    """A word with what the span finder needs to know about it."""

    __slots__ = ("start", "end", "word", "lower", "script", "capital", "langs")

    def __init__(self, text: str, start: int, end: int, word: str):
        self.start, self.end, self.word = start, end, word
        self.lower = word.lower()
        first = word[0]
        script = "Latin" if first.isascii() else char_script(first)
        # Japanese mixes kana and Han characters: one chunk, told apart by detect_language
        self.script = "CJK" if script in ("Han", "Kana") else script
        self.capital = first.isupper()
        langs = _STOP_INDEX.get(self.lower, frozenset())
        if len(word) == 1 and langs:
            elided = text[end : end + 1] in _APOSTROPHES and end + 1 < len(text)
            if not (elided or (word in _LETTER_WORDS)):
                langs = frozenset()
        self.langs = langs


def _boundary_before(text: str, toks: Sequence[_Tok], i: int) -> bool:
    if i == 0:
        return True
    gap = text[toks[i - 1].end : toks[i].start]
    return bool(_BOUNDARY_RE.search(gap))


def _diacritic_langs(word: str) -> Dict[str, float]:
    cues: Dict[str, float] = {}
    for ch in word:
        if ch in _DIACRITICS:
            for lang, w in _CHAR_CUES[ch].items():
                cues[lang] = max(cues.get(lang, 0.0), w)
    return cues


def _before_lowercase(toks: Sequence[_Tok], i: int) -> bool:
    """Whether particle ``i`` precedes a lower-case word ("los perros", not "los Remedios")."""
    for j in range(i + 1, min(i + 4, len(toks))):
        if toks[j].lower not in NAME_PARTICLES:
            return toks[j].script == "Latin" and not toks[j].capital
    return False


def _latin_evidence(text: str, toks: Sequence[_Tok], lang: str):
    """Per-token evidence for ``lang`` against English: strong hits (function words that are not
    name particles), hit weights, English-only function words, and (capitalised) content words."""
    strong, weight, english, capcontent, content = [], [], [], [], []
    for i, t in enumerate(toks):
        s = w = e = cc = c = 0.0
        if t.script == "Latin":
            in_lang = lang in t.langs
            in_en = "en" in t.langs or t.word == "I"
            if in_lang and not in_en:
                # a capitalised function word is usually part of a name, unless it opens a
                # clause of several words
                if not t.capital or (
                    _boundary_before(text, toks, i)
                    and i + 1 < len(toks)
                    and not _boundary_before(text, toks, i + 1)
                ):
                    w = 1.0
                    particle = t.lower in NAME_PARTICLES
                    s = 1.0 if not particle or _before_lowercase(toks, i) else 0.0
            elif in_en and not in_lang:
                e = 1.0
            elif not t.langs:
                c = 1.0
                cc = 1.0 if t.capital else 0.0
                if not t.capital and not t.word.isascii():
                    w = 0.5 * (_diacritic_langs(t.lower).get(lang, 0.0) > 0)
        strong.append(s)
        weight.append(w)
        english.append(e)
        capcontent.append(cc)
        content.append(c)
    return strong, weight, english, capcontent, content


def _window_sums(values: Sequence[float], width: int) -> List[float]:
    sums, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= width:
            acc -= values[i - width]
        if i >= width - 1:
            sums.append(acc)
    return sums


def _flag_windows(text: str, toks: Sequence[_Tok], width: int) -> Dict[str, List[bool]]:
    """Per kind (a non-Latin script, or a Latin-script language), for each window start, whether
    the window ``toks[i:i+width]`` reads as that kind rather than English."""
    n_windows = len(toks) - width + 1
    flags: Dict[str, List[bool]] = {}
    # non-Latin scripts: a window mostly in one script other than Latin
    scripts = Counter(t.script for t in toks if t.script not in ("Latin", None))
    for script, count in scripts.items():
        if count < 0.6 * width:
            continue
        hits = _window_sums([1.0 if t.script == script else 0.0 for t in toks], width)
        flags[script] = [h >= 0.6 * width for h in hits]
    # Latin-script languages: only those with enough function words in the whole text
    totals: Counter = Counter()
    for t in toks:
        if t.script == "Latin" and t.langs and "en" not in t.langs:
            if t.lower not in NAME_PARTICLES:
                totals.update(t.langs)
    for lang, count in totals.items():
        if count < 2:
            continue
        strong, weight, english, capcontent, content = _latin_evidence(text, toks, lang)
        s_sum = _window_sums(strong, width)
        w_sum = _window_sums(weight, width)
        e_sum = _window_sums(english, width)
        cc_sum = _window_sums(capcontent, width)
        c_sum = _window_sums(content, width)
        max_english = max(1.0, 0.1 * width)
        flags[lang] = [
            s_sum[i] >= 2
            and w_sum[i] >= 0.3 * width
            and e_sum[i] <= max_english
            and w_sum[i] >= 3 * e_sum[i]
            and not (c_sum[i] >= 2 and cc_sum[i] > 0.75 * c_sum[i])  # a run of names
            and _distinct_strong(toks, strong, i, width) >= 2  # not one word repeated
            for i in range(n_windows)
        ]
    return flags


def _distinct_strong(toks: Sequence[_Tok], strong: Sequence[float], i: int, width: int) -> int:
    return len({toks[j].lower for j in range(i, i + width) if strong[j]})


def _evidence_for(t: _Tok, kind: str) -> bool:
    """Whether token ``t`` supports ``kind`` (a script name or a Latin-script language)."""
    if kind not in _STOPWORDS:
        return t.script == kind
    if t.script != "Latin":
        return False
    if t.langs:
        return kind in t.langs and "en" not in t.langs
    return not t.capital and not t.word.isascii() and kind in _diacritic_langs(t.lower)


def _is_english_evidence(t: _Tok, kind: str) -> bool:
    """An English function word that is not also one of ``kind``'s."""
    return t.script == "Latin" and ("en" in t.langs and kind not in t.langs or t.word == "I")


_MAX_CAPITAL_REACH = 10


def _comma_before(text: str, toks: Sequence[_Tok], i: int) -> bool:
    return i > 0 and "," in text[toks[i - 1].end : toks[i].start]


def _trim(text: str, toks: Sequence[_Tok], lo: int, hi: int, kind: str) -> Tuple[int, int]:
    """Shrink ``toks[lo:hi]`` to its first/last token supporting ``kind``, then grow it back over
    tokens of the same script up to a clause boundary. Where an English function word comes
    first, stop at a comma before it, or (at the start) at a capitalised word."""
    while lo < hi and not _evidence_for(toks[lo], kind):
        lo += 1
    while hi > lo and not _evidence_for(toks[hi - 1], kind):
        hi -= 1
    if lo >= hi:
        return lo, lo

    def extendable(t: _Tok, edge: _Tok) -> bool:
        return t.script == edge.script and not _is_english_evidence(t, kind)

    j = lo
    while j > 0 and not _boundary_before(text, toks, j) and extendable(toks[j - 1], toks[lo]):
        j -= 1
    commas = [k for k in range(j, lo + 1) if _comma_before(text, toks, k)]
    if _boundary_before(text, toks, j):
        lo = j
    else:  # an unquoted chunk usually opens with a capital, or after a comma
        for k in range(lo - 1, max(j, lo - _MAX_CAPITAL_REACH) - 1, -1):
            if toks[k].capital and toks[k].script == toks[lo].script:
                # take in a capitalised article before it ("Die Entführung", "Le Petit")
                while k - 1 >= j and toks[k - 1].capital and kind in toks[k - 1].langs:
                    k -= 1
                lo = k
                break
        else:
            if commas:
                lo = commas[0]
    j = hi
    n = len(toks)
    while j < n and not _boundary_before(text, toks, j) and extendable(toks[j], toks[hi - 1]):
        j += 1
    if j == n or _boundary_before(text, toks, j):
        hi = j
    else:
        commas = [k for k in range(hi, j + 1) if _comma_before(text, toks, k)]
        if commas:
            hi = commas[-1]
    return lo, hi


def _runs(flags: Sequence[bool], width: int) -> List[Tuple[int, int]]:
    """Token ranges covered by consecutive flagged windows."""
    runs: List[Tuple[int, int]] = []
    for i, flagged in enumerate(flags):
        if not flagged:
            continue
        if runs and i <= runs[-1][1]:
            runs[-1] = (runs[-1][0], i + width)
        else:
            runs.append((i, i + width))
    return runs


def find_foreign_spans(
    text: str, min_tokens: int = 10, english_context: bool = True
) -> List[Tuple[int, int, str]]:
    """Character spans ``(start, end, lang)`` of non-English chunks of >= ``min_tokens`` words.

    With ``english_context`` (the paper's rule: a chunk that sits in English text) spans are only
    returned when the text around them is English; an entirely foreign text gives ``[]``.
    Spans start and end on words (no surrounding quotes or final punctuation). Each Han or kana
    character counts as a word.
    """
    if min_tokens < 1:
        raise ValueError("min_tokens must be >= 1")
    toks = [_Tok(text, s, e, w) for s, e, w in _words(text)]
    if len(toks) < min_tokens:
        return []
    ranges: List[Tuple[int, int, str]] = []
    for kind, flags in _flag_windows(text, toks, min_tokens).items():
        group = kind if kind not in _STOPWORDS else "Latin"
        for lo, hi in _runs(flags, min_tokens):
            lo, hi = _trim(text, toks, lo, hi, kind)
            if hi - lo >= min_tokens:
                ranges.append((lo, hi, group))
    # Latin languages that share function words (fr/it, es/pt) flag the same chunk: merge.
    # Overlapping chunks of different scripts merge too; detect_language names the result.
    merged: List[List] = []
    for lo, hi, group in sorted(ranges):
        if merged and lo < merged[-1][1]:
            if group != merged[-1][2]:
                merged[-1][2] = "Latin"
            merged[-1][1] = max(hi, merged[-1][1])
        else:
            merged.append([lo, hi, group])
    spans: List[Tuple[int, int, str]] = []
    for lo, hi, group in merged:
        start, end = toks[lo].start, toks[hi - 1].end
        if group == "Latin":
            lang, _ = detect_language(text[start:end])
        else:  # name the language from its own script only (pinyin or romaji may sit between)
            lang, _ = detect_language(" ".join(t.word for t in toks[lo:hi] if t.script == group))
        if lang not in ("en", UNKNOWN):
            spans.append((start, end, lang))
    if spans and english_context:
        outside, pos = [], 0
        for start, end, _ in spans:
            outside.append(text[pos:start])
            pos = end
        outside.append(text[pos:])
        if detect_language(" ".join(outside))[0] != "en":
            return []
    return spans
