"""Prompts where no tool helps: chit-chat, greetings, opinions, instructions, definitions, jokes
and story continuations. The right output for each has no call.

Prompts come from templates x topics (and a list of words for definitions, and fixed greetings).
Splits are disjoint by construction: every topic, word and greeting belongs to exactly one split
(70% / 15% / 15%, by a stable hash order), so no prompt of one split occurs in another, nor any
topic; :func:`toolformer.datasets.rows.assert_disjoint` checks the prompts.

Nothing here asks for a number, a date, a fact that a search would find, or a translation.
"""

from __future__ import annotations

import functools
import random
from typing import Dict, List, Sequence, Tuple

from toolformer.datasets.rows import Row, check_n, check_split, row_id, stable_hash
from toolformer.errors import UserError

# Share of the topics (and words, greetings) in train / dev; eval gets the rest.
_SHARES = (("train", 0.70), ("dev", 0.15))

TOPIC_TEMPLATES: Tuple[str, ...] = (
    # instructions
    "Write a haiku about {topic}.",
    "Write a short poem about {topic}.",
    "Write a limerick about {topic}.",
    "Write two cheerful sentences about {topic}.",
    "Describe {topic} in one sentence.",
    "Give me three words that describe {topic}.",
    "Write a short story about {topic}.",
    "Suggest a title for a blog post about {topic}.",
    "Write a friendly note to a friend about {topic}.",
    "Write a slogan about {topic}.",
    "Describe {topic} to a child.",
    "Write a tweet about {topic}.",
    # opinions
    "What do you think about {topic}?",
    "Do you like {topic}?",
    "Why do people enjoy {topic}?",
    "What is the best thing about {topic}?",
    "Is {topic} overrated?",
    "How does {topic} make you feel?",
    "What would you miss most about {topic}?",
    # chit-chat
    "Let's chat about {topic}.",
    "I have been thinking about {topic} a lot lately.",
    "Can we talk about {topic} for a bit?",
    "I really love {topic}. Do you?",
    "Tell me something nice about {topic}.",
    # jokes
    "Tell me a joke about {topic}.",
    "Tell me something funny about {topic}.",
    "Make a pun about {topic}.",
    # plain prose continuations
    "Continue the story: The morning began with {topic}, and",
    "Continue the text: Whenever I think of {topic}, I",
    "Finish the sentence: The thing about {topic} is that",
)

TOPICS: Tuple[str, ...] = (
    "autumn",
    "spring rain",
    "a quiet morning",
    "the ocean",
    "cats",
    "dogs",
    "coffee",
    "tea",
    "friendship",
    "mountains",
    "music",
    "gardening",
    "cooking at home",
    "a rainy afternoon",
    "the night sky",
    "long walks",
    "old books",
    "snow",
    "summer holidays",
    "birds singing",
    "a cup of hot chocolate",
    "learning something new",
    "city lights",
    "the forest",
    "a sunny beach",
    "baking bread",
    "painting",
    "dancing",
    "riding a bicycle",
    "the wind",
    "a lazy Sunday",
    "childhood memories",
    "kindness",
    "patience",
    "a good nap",
    "puppies",
    "kittens",
    "sunsets",
    "sunrises",
    "campfires",
    "the first day of school",
    "road trips",
    "picnics",
    "board games",
    "rainbows",
    "the smell of fresh grass",
    "a cozy blanket",
    "homemade soup",
    "thunderstorms",
    "falling leaves",
    "a garden in bloom",
    "the moon",
    "stars",
    "a busy market",
    "a quiet library",
    "waiting for a bus",
    "a lost umbrella",
    "socks that do not match",
    "early mornings",
    "a messy kitchen",
    "houseplants",
    "a squeaky door",
    "the sound of the sea",
    "pancakes",
    "ice cream",
    "fresh strawberries",
    "a long nap",
    "meeting new people",
    "saying goodbye",
    "moving to a new house",
    "a favourite song",
    "a handwritten letter",
    "dreams",
    "clouds",
    "a walk in the park",
    "a snowy evening",
    "a noisy neighbour",
    "a broken pencil",
    "penguins",
    "elephants",
    "owls",
    "a goldfish",
    "a garden snail",
    "robots",
    "dragons",
    "pirates",
    "a castle",
    "a treasure map",
    "a paper boat",
    "a kite",
    "a lighthouse",
    "a train journey",
    "a village fair",
    "a lemonade stand",
    "a rainy window",
    "knitting",
    "sandcastles",
    "growing tomatoes",
    "a sleepy owl",
    "the smell of coffee",
    "being on time",
    "a forgotten birthday card",
    "a grumpy cat",
    "a brave mouse",
    "a friendly ghost",
)

DEFINITION_TEMPLATES: Tuple[str, ...] = (
    'What does the word "{word}" mean?',
    'Define the word "{word}".',
    'Use the word "{word}" in a sentence.',
)

WORDS: Tuple[str, ...] = (
    "serendipity",
    "ephemeral",
    "melancholy",
    "whimsical",
    "nostalgia",
    "resilient",
    "curious",
    "gregarious",
    "meticulous",
    "candid",
    "eloquent",
    "frugal",
    "gentle",
    "humble",
    "jovial",
    "keen",
    "lucid",
    "mellow",
    "nimble",
    "optimistic",
    "placid",
    "quaint",
    "radiant",
    "sincere",
    "tenacious",
    "vivid",
    "wistful",
    "zealous",
    "ambiguous",
    "benevolent",
    "cozy",
    "diligent",
    "earnest",
    "fickle",
    "generous",
    "hasty",
    "idle",
    "jubilant",
    "kindle",
    "linger",
    "meander",
    "nurture",
    "ponder",
    "quarrel",
    "ramble",
    "savor",
    "tranquil",
    "unwind",
    "venture",
    "wander",
    "yearn",
    "zest",
    "brisk",
    "clumsy",
    "dwindle",
    "flourish",
    "glimmer",
    "hover",
    "murmur",
    "shimmer",
)

GREETINGS: Tuple[str, ...] = (
    "Hi there!",
    "Hello!",
    "Hey, how are you?",
    "Good morning!",
    "Good evening!",
    "How is it going?",
    "Nice to meet you.",
    "Thanks for your help!",
    "Thank you so much!",
    "Have a nice day!",
    "See you later!",
    "Goodbye!",
    "What's up?",
    "How are you doing today?",
    "I'm feeling a bit tired.",
    "I'm so happy right now!",
    "I had a long day.",
    "Can you cheer me up?",
    "Tell me something kind.",
    "I'm bored.",
    "You are very helpful.",
    "Sorry, I didn't mean that.",
    "Can I ask you something?",
    "Let's be friends.",
    "Good night!",
    "Welcome back!",
    "I feel a little sad today.",
    "That's wonderful news!",
    "Congratulations!",
    "Take care!",
    "Cheers!",
    "How was your weekend?",
    "Do you have a favourite colour?",
    "What makes you smile?",
    "Tell me a fun story.",
    "Say something encouraging.",
    "Give me a compliment.",
    "Write a short greeting card.",
    "Tell me a riddle.",
    "Make me laugh.",
)


def _assign(items: Sequence[str], salt: str) -> Dict[str, str]:
    # A balanced, stable split: order by a salted hash, then cut at the shares.
    ordered = sorted(items, key=lambda s: (stable_hash(f"{salt}:{s}"), s))
    out: Dict[str, str] = {}
    start = 0
    for split, share in _SHARES:
        stop = start + round(share * len(ordered))
        out.update({s: split for s in ordered[start:stop]})
        start = stop
    out.update({s: "eval" for s in ordered[start:]})
    return out


def split_pool(split: str) -> Tuple[str, ...]:
    """Every no-tool prompt of ``split``, sorted."""
    return _split_pool(check_split(split))


@functools.lru_cache(maxsize=None)
def _split_pool(split: str) -> Tuple[str, ...]:
    topics = _assign(TOPICS, "notool-topic")
    words = _assign(WORDS, "notool-word")
    greetings = _assign(GREETINGS, "notool-greeting")
    pool = {
        t.format(topic=topic) for topic, s in topics.items() if s == split for t in TOPIC_TEMPLATES
    }
    pool |= {
        t.format(word=word) for word, s in words.items() if s == split for t in DEFINITION_TEMPLATES
    }
    pool |= {g for g, s in greetings.items() if s == split}
    return tuple(sorted(pool))


def all_prompts() -> List[str]:
    """Every no-tool prompt of every split."""
    return [p for split in ("train", "dev", "eval") for p in split_pool(split)]


def make_row(question: str, split: str) -> Row:
    """One row of the shared shape: no answer, no date, no tool."""
    return {
        "id": row_id("notool", split, question, None),
        "question": question,
        "answer": None,
        "answers": [],
        "date": None,
        "tools": [],
        "kind": "notool",
        "split": split,
    }


def generate_notool(n: int, seed: int, split: str) -> List[Row]:
    """``n`` distinct no-tool prompts of ``split`` ("train", "dev" or "eval"), drawn with
    ``seed`` (the same arguments give the same rows, in every process).

    Each row: ``question``, ``answer`` None, ``answers`` [], ``date`` None, ``tools`` [],
    ``kind`` "notool", ``split``. Raises :class:`UserError` (one line) for an unknown split,
    ``n`` < 0 or ``n`` above the split's size (``len(split_pool(split))``).
    """
    check_split(split)
    check_n(n)
    pool = split_pool(split)
    if n > len(pool):
        raise UserError(
            f"the {split} split of notool holds {len(pool)} prompts; "
            f"ask for at most that many (got {n})"
        )
    rng = random.Random(f"notool:{seed}:{split}")
    return [make_row(q, split) for q in rng.sample(pool, n)]
