"""The self-training loop: round 0 = the paper's pipeline, then ReST rounds (Grow, Improve,
fine-tune), each scored on a dev split; the best round is kept, and the loop stops when the dev
score stops improving.

Folder of a run (``SelfTrainConfig.output``)::

    run.json                  the settings (a resumed run must match them)
    round_0/                  corpus (+ contamination guard), baseline dev eval, augment,
                              finetune_0, eval
    round_1/ ...              grow, improve_0, finetune_0, [dpo_0,] [improve_1, finetune_1 ...],
                              eval (dpo_j: with improve.preference "dpo", DPO on pairs_j.jsonl
                              from the SFT adapter of finetune_j; the round's model is then it)
    report.json, report.md    per round: kept calls, dev score with 95% interval, call rate,
                              seconds per stage; the best round; the contamination overlap
    best_adapter/             the best round's LoRA adapter + toolformer.json (base model)

Each fine-tuning leaves ``round_k/model_j/`` (merged weights, tokenizer, toolformer.json) and
``round_k/model_j/adapter/``. With ``keep_models="best"`` (the default) only the best round's and
the latest round's merged weights stay; the others keep their adapter, from which
``load_model`` loads such a folder (the same weights, merged on load).

Every stage writes its files, then records itself in the round's ``state.json``; a rerun skips
recorded stages and resumes the first unfinished one (augment, fine-tuning, eval and Grow resume
inside the stage as well). Paths inside the run folder are recorded relative to it (report.json:
absolute), so a run resumes from any working directory; one process at a time holds the folder.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from toolformer.atomic import atomic_write_json, atomic_write_jsonl
from toolformer.errors import EmptyInputError, UserError, fields_in
from toolformer.output_lock import check_not_input, hold_output
from toolformer.records import open_text
from toolformer.selftrain.candidates import Candidate
from toolformer.selftrain.config import DEMOS_DIR, SelfTrainConfig, shipped_demonstrations
from toolformer.text.numbers import next_answer_number, operands

STATE_FILE = "state.json"
RUN_FILE = "run.json"
MODELS_FILE = "models.json"  # fingerprints of the base model and the starting adapter
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
BEST_ADAPTER = "best_adapter"
# what a run writes at the top of its folder: an input there would be overwritten
RUN_WRITES = (RUN_FILE, REPORT_JSON, REPORT_MD, "round_*", BEST_ADAPTER)
Hook = Callable[[str, Dict[str, Any]], None]


# --------------------------------------------------------------------------- small helpers


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, obj)


def _read_json(path: Path) -> Optional[Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_jsonl(path: Path, rows: Sequence[Dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(path, rows)


def _read_jsonl(path: Path) -> List[Dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (a crash while appending) is ignored.

    Opened by the shared reader's :func:`~toolformer.records.open_text`, so lines end at "\n"
    only: a row holding U+2028, U+2029 or U+0085 (``str.splitlines`` splits there) stays whole.
    """
    if not path.is_file():
        return []
    rows = []
    with open_text(path) as fh:
        for line in fh:
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break
    return rows


def wilson_interval(correct: int, n: int, z: float = 1.96) -> Tuple[float, float]:
    """95% Wilson score interval of a proportion (Wilson 1927)."""
    if n == 0:
        return 0.0, 0.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def loadable(model: str) -> str:
    """A round's model as the report names it: its folder, or its ``adapter/`` once
    ``keep_models`` removed the merged weights (``load_model`` loads either: it follows such a
    folder to its adapter, :func:`toolformer.models.pruned_adapter`). Other names pass through."""
    from toolformer.models import pruned_adapter

    found = pruned_adapter(model)
    return model if found is None else str(found)


# --------------------------------------------------------------------------- rounds


class RoundDir:
    """One round's folder and its ``state.json`` (finished stages and their stats)."""

    def __init__(self, path: Path, config: SelfTrainConfig):
        self.path = path
        self.config = config
        state = _read_json(path / STATE_FILE)
        fp = config.fingerprint()
        changed = config.changed_since(state.get("fingerprint")) if state is not None else []
        if changed:
            raise UserError(
                f"{path} was made with another config (changed: "
                f"{', '.join(changed) or 'unknown'}); rerun with the same "
                "settings to resume, or pass another SelfTrainConfig.output",
                field="SelfTrainConfig.output",
            )
        self.state = state or {"fingerprint": fp, "stages": {}}

    def done(self, stage: str) -> bool:
        return stage in self.state["stages"]

    def stats(self, stage: str) -> Dict[str, Any]:
        return self.state["stages"].get(stage) or {}

    def record(self, stage: str, stats: Dict[str, Any]) -> None:
        self.state["stages"][stage] = stats
        _write_json(self.path / STATE_FILE, self.state)


@dataclass
class SelfTrainResult:
    """What a run did: per-round rows, the best round and why it stopped."""

    output: str
    rounds: List[Dict[str, Any]]
    best_round: Optional[int]
    best_model: str
    best_adapter: Optional[str]
    stopped: str
    contamination: Dict[str, Any] = field(default_factory=dict)
    init_adapter: Optional[str] = None

    def __str__(self) -> str:
        return format_report(self.to_dict())

    def to_dict(self) -> Dict[str, Any]:
        return {
            "output": self.output,
            "rounds": self.rounds,
            "best_round": self.best_round,
            "best_model": self.best_model,
            "best_adapter": self.best_adapter,
            "stopped": self.stopped,
            "contamination": self.contamination,
            "init_adapter": self.init_adapter,
        }


class SelfTrainer:
    """Runs :func:`selftrain`; ``hook(event, info)`` is called before each stage (``"stage"``)
    and after each Grow chunk (``"grow_chunk"``): tests interrupt the run there."""

    def __init__(
        self,
        config: SelfTrainConfig,
        hook: Optional[Hook] = None,
        generator_factory: Optional[Callable[..., Any]] = None,
    ):
        self.config = config.validate()
        self.generator_factory = generator_factory
        self.out = Path(config.output)
        self.hook = hook or (lambda event, info: None)
        self.data_dir = Path(config.data.data_dir).expanduser() if config.data.data_dir else None
        self._policy: Tuple[Optional[str], Any, Any] = (None, None, None)

    # -- paths ----------------------------------------------------------------------------
    def _data_dir(self) -> Path:
        from toolformer.eval.tasks import default_data_dir

        return self.data_dir or default_data_dir()

    def corpus_path(self) -> Path:
        if _generated(self.config.data.corpus):  # generated, not a file
            return Path(self.config.data.corpus)
        p = Path(self.config.data.corpus).expanduser()
        if p.is_absolute() or p.exists():
            return p
        return self._data_dir() / p

    def round_dir(self, k: int) -> RoundDir:
        return RoundDir(self.out / f"round_{k}", self.config)

    def _rel(self, path: Optional[Any]) -> Optional[str]:
        """A path as ``state.json`` records it: relative to the run folder when inside it (the
        run then resumes from any working directory, under any spelling of --output)."""
        if path is None:
            return None
        p = Path(path)
        try:
            return p.absolute().relative_to(self.out.absolute()).as_posix()
        except ValueError:
            return str(path)

    def _abs(self, recorded: Optional[str]) -> Optional[str]:
        """A path read from ``state.json`` as this process can use it: run-folder-relative
        records joined to --output; a record of an older run, relative to the working directory
        of its first command (``runs/x/round_1/model_0``), has that command's --output cut off
        first. Absolute paths and model names pass through."""
        if not recorded or Path(recorded).is_absolute():
            return recorded
        inside = self.out / recorded
        if inside.exists():
            return str(inside)
        first = ((_read_json(self.out / RUN_FILE) or {}).get("config") or {}).get("output")
        if first:
            head = Path(os.path.normpath(os.path.expanduser(first))).parts
            parts = Path(os.path.normpath(recorded)).parts
            if head and parts[: len(head)] == head and len(parts) > len(head):
                return str(self.out.joinpath(*parts[len(head) :]))
        return recorded

    # -- stage runner ---------------------------------------------------------------------
    def _stage(
        self, rd: RoundDir, k: int, name: str, fn: Callable[[], Dict[str, Any]]
    ) -> Dict[str, Any]:
        if rd.done(name):
            return rd.stats(name)
        self.hook("stage", {"round": k, "stage": name})
        self._say(f"round {k}: {name} ...")
        t0 = time.perf_counter()
        stats = fn() or {}
        stats["seconds"] = round(time.perf_counter() - t0, 3)
        rd.record(name, stats)
        self._say(f"round {k}: {name} done in {stats['seconds']:.0f} s {_brief(stats)}")
        return stats

    def _say(self, line: str) -> None:
        if self.config.progress:
            import sys

            print(f"[selftrain] {line}", file=sys.stderr, flush=True)

    def _check_run(self) -> None:
        """run.json holds the settings; a different config is refused before anything runs."""
        path = self.out / RUN_FILE
        old = _read_json(path)
        fp = self.config.fingerprint()
        # a run that failed before its first stage finished (a bad corpus file) holds nothing to
        # protect: the corrected command takes the folder over
        started = any(self.out.glob(f"round_*/{STATE_FILE}"))
        changed = self.config.changed_since(old.get("fingerprint")) if old is not None else []
        if changed and not started:
            old = None
        if old is not None and changed:
            raise UserError(
                f"{self.out} holds a self-training run made with another config (changed: "
                f"{', '.join(changed) or 'unknown'}); rerun with the same settings to resume, "
                "or pass another SelfTrainConfig.output",
                field="SelfTrainConfig.output",
            )
        if old is None:
            _write_json(path, {"fingerprint": fp, "config": self.config.to_dict()})

    def _check_models(self) -> None:
        """A started run goes on only with the base model (and starting adapter, and the files
        its tool options name) whose files it was made with: a name is not enough (the weights
        at a path may have changed since).
        A run recorded before fingerprints were is trusted, and recorded now."""
        from toolformer.fingerprint import check_same_model, model_fingerprint, options_fingerprint

        c = self.config
        current = {"model": model_fingerprint(c.model)}
        if c.init_adapter:
            current["init_adapter"] = model_fingerprint(c.init_adapter)
        tool_files = options_fingerprint(c.tool_options)  # a search corpus, a reader model
        if tool_files:
            current["tool_options"] = tool_files
        path = self.out / MODELS_FILE
        if any(self.out.glob(f"round_*/{STATE_FILE}")):
            check_same_model(
                _read_json(path),
                current,
                c.init_adapter or c.model,
                self.out,
                "pass another SelfTrainConfig.output to train on it as it is now",
            )
        _write_json(path, current)

    # -- models ---------------------------------------------------------------------------
    def _threads(self) -> None:
        if self.config.threads:
            import torch

            torch.set_num_threads(self.config.threads)

    def _load(self, name: str) -> Tuple[Any, Any]:
        if self._policy[0] != name:
            from toolformer.models import load_model

            self._policy = (None, None, None)
            model, tok = load_model(name, dtype=self.config.dtype, device=self.config.device)
            self._policy = (name, model, tok)
        return self._policy[1], self._policy[2]

    def _tools(self) -> Dict[str, Any]:
        from toolformer.tools.assembly import create_tools, setup_tools

        tools = create_tools(
            list(self.config.tools),
            self.config.tool_options,
            model_name=self.config.model,
            dtype=self.config.dtype,
        )
        setup_tools(tools)
        return tools

    # -- round 0 --------------------------------------------------------------------------
    def _corpus(self, rd: RoundDir) -> Dict[str, Any]:
        from toolformer.eval.loaders import load_generic_jsonl
        from toolformer.selftrain.contamination import ContaminationGuard, eval_questions
        from toolformer.selftrain.corpus import load_corpus, load_wikipedia, split_corpus

        c = self.config
        built: Dict[str, Any] = {}
        docs = load_corpus(
            str(self.corpus_path()),
            c.data.doc_template,
            c.data.prompt_template,
            seed=c.seed,
            mix=c.data.mix,
            data_dir=str(self._data_dir()),
            report=built,
        )
        if built:
            from toolformer.selftrain.mix import check_tools

            check_tools([(d.id, d.tools) for d in docs if d.tools is not None], list(c.tools))
        if c.data.max_problem_steps is not None:
            docs = [d for d in docs if d.steps is None or d.steps <= c.data.max_problem_steps]
        docs += load_wikipedia(c.data.wiki_docs)
        if _filter_cls(c.improve.filter).needs_gold and not any(
            d.answer is not None or d.answers for d in docs
        ):
            raise UserError(
                f"the {c.improve.filter!r} filter needs gold answers and the corpus "
                f"{c.data.corpus} has none; set SelfTrainConfig.improve.filter to loss "
                "(or reward), or use a corpus with answers (GSM8K)",
                field="SelfTrainConfig.improve.filter",
            )
        dev_rows: List[Dict[str, Any]] = []
        if c.dev.data:
            dev_rows = [
                {"id": ex.id, "question": ex.fields["question"], "answer": ex.meta["answer"]}
                for ex in load_generic_jsonl(Path(c.dev.data).expanduser())
            ]
        evals = eval_questions(c.data.eval_sets, str(self._data_dir())) if c.data.eval_sets else {}
        guard = ContaminationGuard(evals, c.data.contamination_threshold)
        keep, report = guard.check([d.question for d in docs])
        clean = [d for d, k in zip(docs, keep) if k]
        if not clean:  # here, before the baseline eval and every later stage
            steps = (
                ""
                if c.data.max_problem_steps is None
                else (
                    f" with at most {c.data.max_problem_steps} "
                    "step(s) (SelfTrainConfig.data.max_problem_steps)"
                )
            )
            why = (
                (
                    f"the contamination guard dropped all {len(docs)} as near-duplicates of "
                    f"{', '.join(c.data.eval_sets)} (threshold {c.data.contamination_threshold})"
                )
                if docs
                else "it holds none"
            )
            raise EmptyInputError(
                f"no training text left from the corpus {c.data.corpus}{steps}: "
                f"{why}; use another corpus, other SelfTrainConfig.data.eval_sets "
                "or a higher SelfTrainConfig.data.contamination_threshold",
                field=fields_in(
                    steps,
                    "SelfTrainConfig.data.eval_sets",
                    "SelfTrainConfig.data.contamination_threshold",
                ),
            )
        gold = [d for d in clean if d.answer is not None]
        if dev_rows:
            train = list(clean)
            dev_keep, _ = guard.check([r["question"] for r in dev_rows])
            dev_rows = [r for r, k in zip(dev_rows, dev_keep) if k]
            if not dev_rows:
                raise EmptyInputError(
                    f"no dev problem left from SelfTrainConfig.dev.data "
                    f"{c.dev.data}: the contamination guard dropped every one as "
                    f"a near-duplicate of {', '.join(c.data.eval_sets)}; use "
                    "another SelfTrainConfig.dev.data",
                    field="SelfTrainConfig.dev.data",
                )
        else:
            train, dev = split_corpus(gold, c.dev.size, c.seed, c.dev.max_problem_steps)
            train = train + [d for d in clean if d.answer is None]
            dev_rows = [
                {
                    "id": d.id,
                    "question": d.question,
                    "answer": d.answer,
                    **({"level": d.level} if d.level is not None else {}),
                }
                for d in dev
            ]
        random.Random(c.seed + 1).shuffle(train)
        corpus = rd.path / "corpus"
        _write_jsonl(corpus / "train.jsonl", [d.to_dict() for d in train])
        _write_jsonl(corpus / "dev.jsonl", dev_rows)
        _write_json(corpus / "contamination.json", report.to_dict())
        if built:
            _write_json(corpus / "mix.json", built)
        plain = self._plain_pool(guard, {d.text for d in docs})
        _write_jsonl(corpus / "plain.jsonl", plain["rows"])
        return {
            "train": len(train),
            "dev": len(dev_rows),
            "with_gold": len(gold),
            "documents": len(docs),
            "contamination": report.to_dict(),
            "contamination_line": report.line(),
            "plain": plain["stats"],
            **({"mix": built} if built else {}),
        }

    def _plain_pool(self, guard: Any, used: set) -> Dict[str, Any]:
        """Plain Wikipedia paragraphs for rehearsal (``plain_ratio``; ``corpus/plain.jsonl``):
        the default augment corpus minus the texts the run annotates, minus any paragraph
        sharing a word 13-gram with a perplexity set (WikiText-2 is itself Wikipedia) or nearly
        duplicating an evaluation question."""
        from toolformer.selftrain.contamination import NgramGuard, eval_questions
        from toolformer.selftrain.corpus import load_wikipedia

        c = (
            self.config
        )  # written even with plain_ratio 0: `toolformer finetune --mix-plain` can use it
        refs = eval_questions(c.data.perplexity_sets, str(self._data_dir()))
        ngrams = NgramGuard([text for texts in refs.values() for text in texts], 13)
        paras = [d for d in load_wikipedia(100_000) if d.text not in used]
        leaked = [ngrams.overlaps(d.text) for d in paras]
        keep, _ = guard.check([d.text for d in paras])
        rows = [
            {"id": d.id, "text": d.text} for d, bad, k in zip(paras, leaked, keep) if k and not bad
        ]
        random.Random(c.seed + 2).shuffle(rows)
        return {
            "rows": rows,
            "stats": {
                "paragraphs": len(rows),
                "candidates": len(paras),
                "dropped_13gram": sum(leaked),
                "perplexity_sets": list(c.data.perplexity_sets),
                "dropped_near_duplicate": sum(1 for k in keep if not k),
            },
        }

    def train_docs(self) -> List[Dict[str, Any]]:
        return _read_jsonl(self.out / "round_0" / "corpus" / "train.jsonl")

    def dev_path(self) -> Path:
        return self.out / "round_0" / "corpus" / "dev.jsonl"

    def _augment(self, rd: RoundDir) -> Dict[str, Any]:
        from toolformer.data_aug import AugmentConfig, augment

        c = self.config
        docs = self.train_docs()[: c.round0_docs]
        src = rd.path / "round0_docs.jsonl"
        if not src.exists():
            _write_jsonl(src, [{"id": d["id"], "text": d["text"]} for d in docs])
        summary = augment(
            AugmentConfig(
                input=str(src),
                output=str(rd.path / "augment"),
                model=c.model,
                dtype=c.dtype,
                device=c.device,
                tools=list(c.tools),
                tool_options=c.tool_options,
                limit=0,
                text_field="text",
                id_field="id",
                date_field=None,
                url_field=None,
                annotator=c.annotator,
                seed=c.seed,
                progress=c.progress,
                annotator_factory=c.annotator_factory,
            ).validate()
        )
        rows = _read_jsonl(rd.path / "augment" / "data.jsonl")
        kept = [
            {
                "doc_id": r["id"],
                "text": r["text"],
                "calls": r.get("calls", []),
                "score": min((x.get("score", 0.0) for x in r.get("calls", [])), default=None),
            }
            for r in rows
            if r.get("calls")
        ]
        _write_jsonl(rd.path / "kept_0.jsonl", kept)
        return {"documents": len(docs), "calls_kept": summary.calls_kept, "texts_kept": len(kept)}

    # -- later rounds ---------------------------------------------------------------------
    def _prompts(self, k: int, level: Optional[int]) -> List[Dict[str, Any]]:
        """Round ``k``'s Grow prompts: from ``level`` (:meth:`round_level`) of a leveled
        corpus, else the next ``grow.round_size(k)`` of the corpus."""
        c = self.config
        docs = self.train_docs()
        size = c.grow.round_size(k)
        if level is not None:
            return leveled_prompts(docs, level, size, k, c.grow.review_fraction)
        if not c.grow.rotate_corpus:
            return docs[:size]
        start = (c.round0_docs + sum(c.grow.round_size(r) for r in range(1, k))) % len(docs)
        rotated = docs[start:] + docs[:start]
        return rotated[:size]

    def levels(self) -> List[int]:
        """The levels of a leveled corpus (``ladder``), lowest first; ``[]`` for any other."""
        return sorted({d["level"] for d in self.train_docs() if d.get("level") is not None})

    def round_level(self, k: int) -> Optional[int]:
        """The level round ``k`` (>= 1) grows on: ``grow.start_level`` in round 1 (the lowest
        level above it when the corpus has no such level); later, the previous round's level,
        or the next one up when that round's Grow was right on at least ``grow.climb_at`` of
        its samples at its own level (a curriculum that climbs as the model learns). None for a
        corpus without levels. The level a round grew on is recorded in its Grow stats, so a
        resumed run keeps it."""
        levels = self.levels()
        if not levels:
            return None
        g = self.config.grow
        if k <= 1:
            return next((v for v in levels if v >= g.start_level), levels[-1])
        prev = self.round_dir(k - 1)
        level = self._grown_level(k - 1)
        if g.climb_at is None or not prev.done("improve_0"):
            return level
        right, judged = (prev.stats("improve_0").get("right_by_level") or {}).get(
            str(level), (0, 0)
        )
        if judged and right / judged >= g.climb_at:
            return next((v for v in levels if v > level), level)
        return level

    def _grown_level(self, k: int) -> Optional[int]:
        """The level round ``k`` grew on: as its Grow stats recorded it (a resumed run keeps
        it), else :meth:`round_level`."""
        return self.round_dir(k).stats("grow").get("level") or self.round_level(k)

    def shows_demonstrations(self, k: int, level: Optional[int]) -> bool:
        """Whether round ``k``'s Grow puts the demonstrations before its prompts: in rounds
        1..``grow.demonstrations_rounds`` (every round when 0), and, with
        ``grow.demonstrations_on_climb``, in the first round at a level above the previous
        round's (``level``: this round's, :meth:`round_level`)."""
        g = self.config.grow
        if not g.demonstrations:
            return False
        if g.demonstrations_rounds == 0 or k <= g.demonstrations_rounds:
            return True
        if not g.demonstrations_on_climb or level is None or k <= 1:
            return False
        before = self._grown_level(k - 1)
        return before is not None and level > before

    def _demonstrations(self) -> str:
        """The text put before every Grow prompt: a shipped set by name (``calculator``: four
        hand-written word problems answered with a call, none from an evaluation set), a .txt
        file, or the text itself."""
        d = self.config.grow.demonstrations
        if not d:
            return ""
        shipped = DEMOS_DIR / f"{d}.txt"
        if "\n" not in d and shipped.is_file():
            return offered_demonstrations(shipped.read_text(encoding="utf-8"), self.config.tools)
        p = Path(d).expanduser()
        if d.endswith(".txt"):
            if not p.is_file():
                names = shipped_demonstrations()
                raise UserError(
                    f"demonstrations file {d} not found (shipped sets: {', '.join(names)})"
                )
            return p.read_text(encoding="utf-8")
        return d

    def _grow(self, rd: RoundDir, k: int, policy: str) -> Dict[str, Any]:
        from toolformer.generation import ToolGenerator
        from toolformer.tools import ToolExecutor

        c = self.config
        self._threads()
        level = self.round_level(k)
        prompts = self._prompts(k, level)
        partial = rd.path / "grow.partial.jsonl"
        done_rows = _read_jsonl(partial)
        done = {r["doc_id"] for r in done_rows}
        _write_jsonl(partial, done_rows)  # drop a torn last line before appending
        model, tok = self._load(policy)
        shown = self.shows_demonstrations(k, level)
        demo = self._demonstrations() if shown else ""
        tools = self._tools()
        executor = ToolExecutor(tools)
        # one executor per tool: a forced sample's grammar may name only the tool it explores
        single = {name: ToolExecutor({name: tool}) for name, tool in tools.items()}
        t0 = time.perf_counter()
        chunk = c.grow.generation.batch_size
        for lo in range(0, len(prompts), chunk):
            docs = [d for d in prompts[lo : lo + chunk] if d["id"] not in done]
            if not docs:
                continue
            gen = c.grow.sampling(c.seed + 100_003 * k + lo)
            batch = [(d, s) for d in docs for s in range(c.grow.samples_per_prompt)]
            factory = self.generator_factory or ToolGenerator
            demos = [
                (
                    shuffled_demonstrations(demo, f"{c.seed}-{d['id']}-{s}")
                    if c.grow.demonstrations == "mix"
                    else demo
                )
                for d, s in batch
            ]
            texts = [p + d["prompt"] for p, (d, _) in zip(demos, batch)]
            # the call grammars read the problem only: a demonstration's numbers are no
            # Calculator argument (numbers_from_text) for this problem
            starts = [len(p) for p in demos]
            generator = factory(model, tok, executor, gen)
            outputs = list(_generate_for(generator, texts, [d for d, _ in batch], starts))
            # the no-call and forced samples reuse each doc's first prompt (its demonstrations)
            by_doc = {d["id"]: (t, st) for (d, s), t, st in zip(batch, texts, starts) if s == 0}
            n_plain = c.grow_no_call_samples
            if n_plain:  # the same model without a call, on the same prompts
                plain = [(d, c.grow.samples_per_prompt + s) for d in docs for s in range(n_plain)]
                off = replace(gen, tools_enabled=False, seed=gen.seed + 7)
                gen_off = factory(model, tok, executor, off)
                prompts_off = [by_doc[d["id"]][0] for d, _ in plain]
                starts_off = [by_doc[d["id"]][1] for d, _ in plain]
                outputs += _generate_for(gen_off, prompts_off, [d for d, _ in plain], starts_off)
                batch = batch + plain
            first = c.grow.samples_per_prompt + n_plain
            picks = forced_samples(docs, single, c.grow_forced_call_samples)
            for tool in sorted({t for _, t, _ in picks}):
                mine = [(d, s) for d, t, s in picks if t == tool]
                # a call of `tool` opens at the first place one may: every '[' is in the top k
                forced = replace(
                    gen,
                    call_top_k=FORCE_CALL_TOP_K,
                    call_threshold=0.0,
                    seed=gen.seed + 11 + len(tool),
                )
                gen_f = factory(model, tok, single[tool], forced)
                prompts_f = [by_doc[d["id"]][0] for d, _ in mine]
                starts_f = [by_doc[d["id"]][1] for d, _ in mine]
                outputs += _generate_for(gen_f, prompts_f, [d for d, _ in mine], starts_f)
                batch = batch + [(d, first + s) for d, s in mine]
            rows = []
            for (d, s), o in zip(batch, outputs):
                text, calls = o.text, [x.to_dict() for x in o.calls]
                if c.grow.answer_only and d.get("kind") in (None, "math"):  # a number answers it
                    text, calls = cut_after_answer(text, calls)
                gold = d.get("answer") if d.get("answer") is not None else d.get("answers")
                rows.append(
                    Candidate(
                        d["id"],
                        s,
                        d["prompt"],
                        text,
                        calls,
                        gold,
                        o.finish_reason,
                        d.get("kind"),
                        d.get("tools"),
                    ).to_dict()
                )
            with partial.open("a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            self.hook("grow_chunk", {"round": k, "done": lo + len(docs)})
        rows = _read_jsonl(partial)
        os.replace(partial, rd.path / "grow.jsonl")
        calls = [x for r in rows for x in r["calls"]]
        return {
            "prompts": len(prompts),
            "samples": len(rows),
            "policy": self._rel(policy),
            "with_calls": sum(bool(r["calls"]) for r in rows),
            "calls": len(calls),
            "calls_ok": sum(1 for x in calls if not x.get("error")),
            "grow_seconds_now": round(time.perf_counter() - t0, 3),
            **({"demonstrations": shown} if c.grow.demonstrations else {}),
            **({"level": level} if level is not None else {}),
            **({"by_kind": grow_by_kind(rows)} if any(r.get("kind") for r in rows) else {}),
        }

    def _improve(self, rd: RoundDir, k: int, j: int, policy: str) -> Dict[str, Any]:
        from collections import Counter

        from toolformer.selftrain.filters import FilterContext, build_filter

        c = self.config
        cands = [Candidate.from_dict(r) for r in _read_jsonl(rd.path / "grow.jsonl")]
        scores_path = rd.path / "scores.jsonl"
        if scores_path.is_file():
            scores = [r["score"] for r in _read_jsonl(scores_path)]
        else:
            flt = build_filter(
                c.improve.filter,
                FilterContext(load=lambda: self._load(policy)),
                c.improve.filter_options,
            )
            try:
                scores = flt.scores(cands) if cands else []
            finally:
                flt.close()
            _write_jsonl(
                scores_path,
                [
                    {"doc_id": x.doc_id, "sample": x.sample, "score": s}
                    for x, s in zip(cands, scores)
                ],
            )
        step = (k - 1) * c.improve.steps + j
        threshold = c.improve.schedule().at(step)
        plain_ok = _filter_cls(
            c.improve.filter
        ).keeps_plain  # a right output without a call may train
        by_doc: Dict[str, List[Tuple[float, Candidate]]] = {}
        for cand, s in zip(cands, scores):
            if (
                s is not None
                and s >= threshold
                and (cand.ok_calls or (plain_ok and not cand.calls))
            ):
                by_doc.setdefault(cand.doc_id, []).append((s, cand))
        kept = []
        for doc_id, items in by_doc.items():
            seen = set()
            for s, cand in sorted(items, key=lambda it: -it[0]):
                text = cand.training_text()
                if text in seen:
                    continue
                seen.add(text)
                kept.append(
                    {
                        "doc_id": doc_id,
                        "text": text,
                        "calls": cand.calls,
                        "score": s,
                        **({"kind": cand.kind} if cand.kind else {}),
                    }
                )
                if len(seen) >= c.improve.max_kept_per_prompt:
                    break
        capped = 0
        if c.improve.max_kept_per_kind is not None:
            before = len(kept)
            kept = cap_per_kind(kept, c.improve.max_kept_per_kind)
            capped = before - len(kept)
        _write_jsonl(rd.path / f"kept_{j}.jsonl", kept)
        levels = {d["id"]: d.get("level") for d in self.train_docs()}
        by_level: Dict[str, List[int]] = {}
        for cand, s in zip(cands, scores):
            if s is not None and levels.get(cand.doc_id) is not None:
                tally = by_level.setdefault(str(levels[cand.doc_id]), [0, 0])
                tally[0] += s >= threshold
                tally[1] += 1
        pairs = self._pairs(rd, j, cands, scores)
        tools = Counter(x["tool"] for r in kept for x in r["calls"] if not x.get("error"))
        return {
            "filter": c.improve.filter,
            "step": step,
            "threshold": threshold,
            "candidates": len(cands),
            "judged": sum(s is not None for s in scores),
            "passed": sum(1 for s in scores if s is not None and s >= threshold),
            "texts_kept": len(kept),
            "prompts_kept": len(by_doc),
            "calls_kept": dict(tools),
            **({"capped": capped} if capped else {}),
            **({"right_by_level": dict(sorted(by_level.items()))} if by_level else {}),
            **({"by_kind": kept_by_kind(kept)} if any(r.get("kind") for r in kept) else {}),
            **({"pairs": pairs} if pairs is not None else {}),
        }

    def _pairs(
        self, rd: RoundDir, j: int, cands: List[Candidate], scores: List[Any]
    ) -> Optional[int]:
        """With ``improve.preference``: the right-vs-wrong pairs of the round's samples in
        ``pairs_{j}.jsonl`` (:func:`toolformer.preference.preference_pairs`); their count, or
        None when preference training is off."""
        from toolformer.preference import preference_pairs

        c = self.config
        if not c.improve.preference:
            return None
        pairs = preference_pairs(cands, scores, c.improve.dpo.max_pairs_per_prompt)
        _write_jsonl(rd.path / f"pairs_{j}.jsonl", pairs)
        return len(pairs)

    def _dpo(self, rd: RoundDir, k: int, j: int, sft_adapter: str) -> Dict[str, Any]:
        """DPO on ``pairs_{j}.jsonl`` from the round's SFT adapter (the reference policy too);
        its output (``dpo_{j}/``) is laid out as a fine-tuning's, and becomes the round's
        model."""
        from toolformer.finetune import ADAPTER_DIR
        from toolformer.manifest import write_manifest
        from toolformer.preference import DPOTrainConfig, dpo_train

        c = self.config
        pairs = rd.path / f"pairs_{j}.jsonl"
        n = len(_read_jsonl(pairs))
        if not n:
            return {"skipped": "no preference pairs", "pairs": 0}
        out = rd.path / f"dpo_{j}"
        self._policy = (None, None, None)  # free memory before training
        m = dpo_train(
            DPOTrainConfig(
                pairs=str(pairs),
                model=c.model,
                adapter=sft_adapter,
                output_dir=str(out),
                settings=c.improve.dpo,
                seed=c.seed + k,
                threads=c.threads,
                progress=c.progress,
            )
        )
        adapter = out / ADAPTER_DIR
        manifest = adapter_manifest(c, k, len(_read_jsonl(rd.path / f"kept_{j}.jsonl")))
        write_manifest(str(adapter), {**manifest, "preference": "dpo", "pairs": n})
        return {
            "pairs": n,
            "adapter": self._rel(adapter),
            "model": self._rel(out),
            "from_adapter": self._rel(sft_adapter),
            "train_loss": m.get("train_loss"),
            "global_step": m.get("global_step"),
            "reward_accuracy": m.get("reward_accuracy"),
            "reward_margin": m.get("reward_margin"),
        }

    def _round_kept(self, k: int) -> Path:
        """The kept data of a finished round (its last Improve step)."""
        last = 0 if k == 0 else self.config.improve.steps - 1
        return self.out / f"round_{k}" / f"kept_{last}.jsonl"

    def _finetune(
        self, rd: RoundDir, k: int, j: int, prev_adapter: Optional[str]
    ) -> Dict[str, Any]:
        from toolformer.finetune import ADAPTER_DIR, finetune, latest_checkpoint
        from toolformer.manifest import write_manifest

        c = self.config
        rows = _read_jsonl(rd.path / f"kept_{j}.jsonl")
        if c.improve.accumulate:
            for r in range(k):
                rows = _read_jsonl(self._round_kept(r)) + rows
        if not rows:
            return {"skipped": "no kept data", "adapter": self._rel(prev_adapter), "texts": 0}
        data = rd.path / f"train_{j}.jsonl"
        _write_jsonl(data, [{"text": r["text"]} for r in rows])
        # rehearsal: the finetuner draws plain_ratio plain paragraphs per kept text
        plain = self.out / "round_0" / "corpus" / "plain.jsonl"
        mix = (
            {"mix_plain": str(plain), "mix_ratio": c.plain_ratio / (1 + c.plain_ratio)}
            if c.plain_ratio > 0 and plain.is_file() and plain.stat().st_size
            else {}
        )
        out = rd.path / f"model_{j}"
        # the newest complete checkpoint (one cut short by a kill is skipped), else a fresh start
        resume = "latest" if latest_checkpoint(str(out), say=False) else None
        self._policy = (None, None, None)  # free memory before training
        result = finetune(
            replace(
                c.finetune,
                data=str(data),
                output_dir=str(out),
                model=c.model,
                lora=True,
                init_adapter=prev_adapter if (c.continue_adapter and prev_adapter) else None,
                progress=c.progress,
                resume_from_checkpoint=resume,
                **mix,
                training_args={**c.finetune.training_args, "seed": c.seed + k},
            )
        )
        adapter = out / ADAPTER_DIR
        write_manifest(str(adapter), adapter_manifest(c, k, len(rows)))
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        m = result.metrics
        return {
            "texts": len(rows),
            "plain_texts": int(m.get("plain_documents") or 0),
            "adapter": self._rel(adapter),
            "model": self._rel(out),
            "train_loss": m.get("train_loss"),
            "global_step": m.get("global_step"),
            "tokens_trained": m.get("tokens_trained"),
        }

    def dev_tasks(self) -> List[Path]:
        """The dev split's files, one per kind: the held-out problems (``dev.jsonl``) and, for a
        mixed corpus, the date and no-tool generators' ``dev`` splits (``dev.size // 2`` items
        each, written once; disjoint from their training and evaluation splits by
        construction), so a round that learns when to call is not judged on math alone. Fact
        questions have no dev split (their pool is the training corpus)."""
        from toolformer.datasets.dateset import generate_dateset
        from toolformer.datasets.notool import generate_notool
        from toolformer.selftrain import mix

        c = self.config
        paths = [self.dev_path()]
        if not mix.is_spec(c.data.corpus):
            return paths
        weights = mix.parse_mix(c.data.mix)
        n = max(1, c.dev.size // 2)
        corpus = self.dev_path().parent
        for kind, make in (("dates", generate_dateset), ("notool", generate_notool)):
            if weights.get(kind):
                path = corpus / f"dev_{kind}.jsonl"
                if not path.is_file():
                    rows = [
                        {
                            "question": r["question"],
                            "answer": r.get("answers") or None,
                            "date": r.get("date"),
                            "tools": r["tools"],
                        }
                        for r in make(n, c.seed, "dev")
                    ]
                    _write_jsonl(path, rows)
                paths.append(path)
        return paths

    def _eval(self, rd: RoundDir, model: str, name: str) -> Dict[str, Any]:
        """The dev score of ``model``: accuracy on the held-out problems, or with a mixed corpus
        the mean of the kinds' accuracies (:meth:`dev_tasks`; ``by_kind`` holds each)."""
        from toolformer.eval.harness import EvalConfig, evaluate

        c = self.config
        gen = c.dev.decoding(c.seed)
        paths = self.dev_tasks()
        keys = [f"jsonl:{p.resolve()}" for p in paths]  # the harness names a jsonl: task so
        res = evaluate(
            EvalConfig(
                model=model,
                tasks=",".join(keys),
                tools=list(c.tools),
                tool_options=c.tool_options,
                output_dir=str(rd.path / name),
                generation=gen,
                dtype=c.dtype,
                device=c.device,
                threads=c.threads,
                progress=c.progress,
                name=name,
                data_dir=str(self._data_dir()),
                max_new_tokens=c.dev.max_new_tokens,
            )
        )
        tasks = [res["tasks"][key] for key in keys]
        levels = {r["id"]: r["level"] for r in _read_jsonl(paths[0]) if r.get("level") is not None}
        by_level = (
            score_by_level(
                (
                    r
                    for f in sorted((rd.path / name / "samples").glob("*.jsonl"))
                    for r in _read_jsonl(f)
                ),
                levels,
            )
            if levels
            else {}
        )
        if len(tasks) == 1:
            task = tasks[0]
            lo, hi = wilson_interval(task["correct"], task["n"])
            return {
                **({"by_level": by_level} if by_level else {}),
                "model": self._rel(model),
                "score": task["score"],
                "correct": task["correct"],
                "n": task["n"],
                "ci95": [round(lo, 4), round(hi, 4)],
                "tool_call_rate": task["tool_call_rate"],
                "calls": task["calls"],
                "call_failure_rate": task["call_failure_rate"],
            }
        kinds = ["math"] + [p.stem[len("dev_") :] for p in paths[1:]]
        n, correct, calls = (sum(t[k] for t in tasks) for k in ("n", "correct", "calls"))
        failed = sum(t["call_failure_rate"] * t["calls"] for t in tasks)
        # a macro mean has no Wilson interval: the one shown is the pooled accuracy's
        lo, hi = wilson_interval(correct, n)
        return {
            "model": self._rel(model),
            "score": sum(t["score"] for t in tasks) / len(tasks),
            "correct": correct,
            "n": n,
            "ci95": [round(lo, 4), round(hi, 4)],
            "tool_call_rate": sum(t["tool_call_rate"] * t["n"] for t in tasks) / n,
            "calls": calls,
            "call_failure_rate": failed / calls if calls else 0.0,
            "by_kind": {k: round(t["score"], 4) for k, t in zip(kinds, tasks)},
        }

    # -- the run --------------------------------------------------------------------------
    def run(self) -> SelfTrainResult:
        c = self.config
        from toolformer.selftrain.corpus import corpus_not_found

        if (
            not _generated(c.data.corpus) and not self.corpus_path().is_file()
        ):  # before run.json exists
            raise corpus_not_found(self.corpus_path())
        check_not_input(
            self.out,
            {
                "SelfTrainConfig.data.corpus": None
                if _generated(c.data.corpus)
                else self.corpus_path(),
                "SelfTrainConfig.dev.data": c.dev.data,
                "SelfTrainConfig.init_adapter": c.init_adapter,
            },
            RUN_WRITES,
            option="SelfTrainConfig.output",
        )
        # one process per run folder: a second run would interleave its stages with this one's
        with hold_output(self.out, option="SelfTrainConfig.output"):
            self._check_run()
            self._check_models()
            return self._run()

    def _run(self) -> SelfTrainResult:
        c = self.config
        rounds: List[Dict[str, Any]] = []

        rd = self.round_dir(0)
        corpus = self._stage(rd, 0, "corpus", lambda: self._corpus(rd))
        # the starting policy: the base model, or an adapter on top of it (init_adapter)
        policy, adapter = (c.init_adapter, c.init_adapter) if c.init_adapter else (c.model, None)
        start = policy
        base = self._stage(rd, 0, "baseline", lambda: self._eval(rd, start, "baseline"))
        if c.round0_docs > 0:
            aug = self._stage(rd, 0, "augment", lambda: self._augment(rd))
            ft = self._stage(rd, 0, "finetune_0", lambda: self._finetune(rd, 0, 0, None))
            if ft.get("model"):
                policy, adapter = self._abs(ft["model"]), self._abs(ft["adapter"])
                ev = self._stage(rd, 0, "eval", lambda: self._eval(rd, policy, "eval"))
            else:
                ev = base
            rounds.append(self._row(0, rd, ev, aug.get("calls_kept", {}), policy, adapter))
        best = {"round": None, "score": base["score"], "model": start, "adapter": c.init_adapter}
        if rounds and rounds[0]["dev_score"] > best["score"]:
            best = {
                "round": 0,
                "score": rounds[0]["dev_score"],
                "model": policy,
                "adapter": adapter,
            }
        self._prune({best["model"], policy}, 0)
        stale, stopped = 0, f"max_rounds {c.max_rounds} reached"
        for k in range(1, c.max_rounds + 1):
            rd = self.round_dir(k)
            grow_policy = policy
            self._stage(rd, k, "grow", lambda: self._grow(rd, k, grow_policy))
            kept_tools: Dict[str, int] = {}
            for j in range(c.improve.steps):
                imp = self._stage(
                    rd, k, f"improve_{j}", lambda: self._improve(rd, k, j, grow_policy)
                )
                kept_tools = imp.get("calls_kept", {})
                ft = self._stage(rd, k, f"finetune_{j}", lambda: self._finetune(rd, k, j, adapter))
                if ft.get("model"):
                    policy, adapter = self._abs(ft["model"]), self._abs(ft["adapter"])
                    if c.improve.preference == "dpo":  # from this SFT adapter, its reference
                        sft = adapter
                        dp = self._stage(rd, k, f"dpo_{j}", lambda: self._dpo(rd, k, j, sft))
                        if dp.get("model"):
                            policy, adapter = self._abs(dp["model"]), self._abs(dp["adapter"])
            if policy == grow_policy:  # nothing was trained this round: same model, same score
                prev = rounds[-1] if rounds else self._baseline_row(base)
                same = {
                    "model": self._rel(policy),
                    "score": prev["dev_score"],
                    "n": prev["n"],
                    "ci95": prev["ci95"],
                    "tool_call_rate": prev["tool_call_rate"],
                    "call_failure_rate": prev["call_failure_rate"],
                    "reused": True,
                }
                ev = self._stage(rd, k, "eval", lambda: dict(same))
            else:
                ev = self._stage(rd, k, "eval", lambda: self._eval(rd, policy, "eval"))
            rounds.append(self._row(k, rd, ev, kept_tools, policy, adapter))
            if ev["score"] > best["score"]:
                best, stale = (
                    {"round": k, "score": ev["score"], "model": policy, "adapter": adapter},
                    0,
                )
            else:
                stale += 1
            self._prune({best["model"], policy}, k)
            if stale >= c.patience:
                stopped = f"dev score did not improve for {stale} round(s)"
                break
        best_adapter = None
        if best["adapter"]:
            dst = self.out / BEST_ADAPTER
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(best["adapter"], dst)
            best_adapter = str(dst)
            if c.calibrates:  # when to call: stored in the adapter's manifest
                from toolformer.manifest import write_call_trigger

                rd0 = self.round_dir(0)
                model_for = best["model"]
                trigger = self._stage(
                    rd0,
                    0,
                    f"calibrate_round_{best['round']}",
                    lambda: self._calibrate(rd0, model_for),
                )
                write_call_trigger(dst, trigger)
        for row in rounds:  # a pruned round loads from its adapter; the report's paths are
            row["model"] = self._shown(loadable(row["model"]))  # absolute (any directory)
            row["adapter"] = self._shown(row["adapter"])
        result = SelfTrainResult(
            str(self.out.absolute()),
            [self._baseline_row(base)] + rounds,
            best["round"],
            self._shown(loadable(best["model"])),
            self._shown(best_adapter),
            stopped,
            {
                **corpus.get("contamination", {}),
                **({"plain": corpus["plain"]} if corpus.get("plain") else {}),
            },
            c.init_adapter,
        )
        _write_json(self.out / REPORT_JSON, result.to_dict())
        (self.out / REPORT_MD).write_text(format_report(result.to_dict()) + "\n", encoding="utf-8")
        return result

    def calibration_items(self) -> List[Dict[str, Any]]:
        """Held-out items of each kind the run trains (``calibration.size`` each): the dev
        split's problems (Calculator), the date and no-tool generators' ``dev`` splits, and
        fact items of the training split that no Grow prompted. Rows: ``question``, ``tools``,
        ``kind``."""
        from toolformer.datasets.dateset import generate_dateset
        from toolformer.datasets.notool import generate_notool
        from toolformer.selftrain import mix

        c, n = self.config, self.config.calibration.size
        corpus = self.round_dir(0).path / "corpus"
        items = [
            {"question": r["question"], "tools": ["Calculator"], "kind": "math"}
            for r in _read_jsonl(corpus / "dev.jsonl")[:n]
        ]
        weights = mix.parse_mix(c.data.mix) if mix.is_spec(c.data.corpus) else {}
        if weights.get("dates"):
            items += [
                {"question": r["question"], "tools": ["Calendar"], "kind": "dates"}
                for r in generate_dateset(n, c.seed, "dev")
            ]
        if weights.get("notool"):
            items += [
                {"question": r["question"], "tools": [], "kind": "notool"}
                for r in generate_notool(n, c.seed, "dev")
            ]
        if weights.get("facts"):
            prompted = {
                r["doc_id"]
                for k in range(1, c.max_rounds + 1)
                for r in _read_jsonl(self.round_dir(k).path / "grow.jsonl")
            }
            facts = [
                r
                for r in _read_jsonl(corpus / "train.jsonl")
                if r.get("kind") == "facts" and r["id"] not in prompted
            ]
            items += [
                {"question": r["question"], "tools": list(r.get("tools") or []), "kind": "facts"}
                for r in facts[:n]
            ]
        return items

    def _calibrate(self, rd: RoundDir, model_name: str) -> Dict[str, Any]:
        """Calibrate ``model_name``'s call trigger on :meth:`calibration_items`."""
        from toolformer.generation.trigger import calibrate_trigger

        self._threads()
        items = self.calibration_items()
        model, tok = self._load(model_name)
        cal = calibrate_trigger(
            model,
            tok,
            items,
            template=self.config.data.prompt_template,
            max_new_tokens=self.config.grow.generation.max_new_tokens,
            batch_size=self.config.dev.generation.batch_size,
            objective=self.config.calibration.objective,
        )
        _write_jsonl(rd.path / "calibration_items.jsonl", items)
        return {**cal.to_dict(), "kinds": dict(Counter(i["kind"] for i in items))}

    def _shown(self, path: Optional[str]) -> Optional[str]:
        """A path inside the run folder as the report gives it: absolute, so that it holds from
        any working directory (a model name or a path elsewhere as it is)."""
        if path is None:
            return None
        p = Path(path).absolute()
        try:
            p.relative_to(self.out.absolute())
        except ValueError:
            return path
        return str(p)

    def _prune(self, keep: set, upto: int) -> None:
        """With ``keep_models="best"``: remove the merged weights of the fine-tuned models of rounds
        0..``upto`` other than ``keep`` (the best and the latest so far); their adapters stay, and
        ``load_model`` loads such a folder from its adapter. A resumed run replays finished
        rounds: later rounds' models are not touched until the loop reaches them."""
        if self.config.keep_models == "all":
            return
        from toolformer.models import ADAPTER_DIR

        keep = {Path(m).resolve() for m in keep if m}
        for k in range(upto + 1):
            round_dir = self.out / f"round_{k}"
            for folder in sorted([*round_dir.glob("model_*"), *round_dir.glob("dpo_*")]):
                if folder.resolve() in keep or not (folder / ADAPTER_DIR).is_dir():
                    continue
                self._prune_folder(folder)

    def _prune_folder(self, folder: Path) -> None:
        from toolformer.models import weight_files

        files = weight_files(folder)
        if files:
            freed = sum(f.stat().st_size for f in files)
            for f in files:
                f.unlink()
            self._say(
                f"removed the merged weights of {folder} ({freed / 2**20:.0f} MiB); "
                "it loads from its adapter/ (keep_models=best)"
            )

    @staticmethod
    def _baseline_row(ev: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "round": "base",
            "dev_score": ev["score"],
            "ci95": ev["ci95"],
            "n": ev["n"],
            "tool_call_rate": ev["tool_call_rate"],
            "call_failure_rate": ev["call_failure_rate"],
            "calls_kept": {},
            "seconds": {"eval": ev.get("seconds")},
            **({"dev_by_level": ev["by_level"]} if ev.get("by_level") else {}),
            "model": ev["model"],
            "adapter": None,
        }

    @staticmethod
    def _row(
        k: int,
        rd: RoundDir,
        ev: Dict[str, Any],
        kept: Dict[str, int],
        model: str,
        adapter: Optional[str],
    ) -> Dict[str, Any]:
        return {
            "round": k,
            "dev_score": ev["score"],
            "ci95": ev["ci95"],
            "n": ev["n"],
            "tool_call_rate": ev["tool_call_rate"],
            "call_failure_rate": ev["call_failure_rate"],
            "calls_kept": kept,
            "seconds": {s: v.get("seconds") for s, v in rd.state["stages"].items()},
            "grow": {
                key: rd.stats("grow").get(key)
                for key in ("samples", "with_calls", "calls", "calls_ok")
            }
            if rd.done("grow")
            else None,
            "texts_kept": _texts_kept(rd),
            **_level_stats(rd),
            **({"dev_by_level": ev["by_level"]} if ev.get("by_level") else {}),
            "model": model,
            "adapter": adapter,
        }


def cap_per_kind(kept: Sequence[Dict[str, Any]], cap: int) -> List[Dict[str, Any]]:
    """At most ``cap`` of the ``kept`` texts per group (item ``kind``, first called tool or none):
    each prompt's best text before any prompt's second, then higher scores first; the kept
    order is otherwise unchanged. A text without ``kind`` groups under None."""
    rank: Dict[str, int] = {}
    keyed = []
    for i, r in enumerate(kept):
        nth = rank.get(r["doc_id"], 0)
        rank[r["doc_id"]] = nth + 1
        group = (r.get("kind"), r["calls"][0]["tool"] if r.get("calls") else None)
        keyed.append(((nth, -float(r.get("score") or 0.0), i), group, i))
    chosen, used = set(), Counter()
    for key, group, i in sorted(keyed):
        if used[group] < cap:
            used[group] += 1
            chosen.add(i)
    return [r for i, r in enumerate(kept) if i in chosen]


FORCE_CALL_TOP_K = 1 << 30  # larger than any vocabulary: the trigger fires wherever a call may open


def forced_samples(
    docs: Sequence[Dict[str, Any]], offered: Mapping[str, Any], n: int
) -> List[Tuple[Dict[str, Any], str, int]]:
    """``(doc, tool, sample_index)`` for Grow's forced-call samples: ``n`` per doc and per tool
    that fits it (its ``tools``) and is ``offered``; index ``s`` counts over the doc's forced
    samples (0, 1, ...). A doc without ``tools`` (a plain corpus) or with ``[]`` gets none."""
    out = []
    for d in docs:
        fitting = [t for t in (d.get("tools") or []) if t in offered]
        s = 0
        for tool in fitting:
            for _ in range(n):
                out.append((d, tool, s))
                s += 1
    return out


def score_by_level(
    samples: Iterable[Dict[str, Any]], levels: Dict[str, int]
) -> Dict[str, List[int]]:
    """``{level: [correct, n]}`` over the eval ``samples`` (the harness's rows: ``id``,
    ``correct``) whose ``id`` has a level in ``levels``, lowest level first."""
    out: Dict[int, List[int]] = {}
    for row in samples:
        level = levels.get(str(row.get("id")))
        if level is not None:
            tally = out.setdefault(level, [0, 0])
            tally[0] += bool(row.get("correct"))
            tally[1] += 1
    return {str(k): out[k] for k in sorted(out)}


def _level_stats(rd: RoundDir) -> Dict[str, Any]:
    """A leveled round's level and its Grow's right samples at that level (``[right, judged]``);
    nothing for a corpus without levels."""
    level = rd.stats("grow").get("level")
    if level is None:
        return {}
    right = (rd.stats("improve_0").get("right_by_level") or {}).get(str(level))
    return {"level": level, "grow_right": right}


def leveled_prompts(
    docs: Sequence[Dict[str, Any]], level: int, size: int, k: int, review_fraction: float
) -> List[Dict[str, Any]]:
    """Round ``k``'s ``size`` prompts from a leveled corpus: ``review_fraction`` of them from
    the levels below ``level`` (none when there are none), the rest from ``level`` itself, each
    part the next slice of its pool in corpus order (rotating, so rounds at the same level grow
    on new problems while the pool lasts)."""
    current = [d for d in docs if d.get("level") == level]
    lower = [d for d in docs if d.get("level") is not None and d["level"] < level]
    n_review = round(size * review_fraction) if lower else 0

    def take(pool: List[Dict[str, Any]], n: int) -> List[Dict[str, Any]]:
        if not pool or n <= 0:
            return []
        start = ((k - 1) * n) % len(pool)
        rotated = pool[start:] + pool[:start]
        return rotated[: min(n, len(pool))]

    return take(current, size - n_review) + take(lower, n_review)


def _answer_span(text: str, pos: int) -> Optional[Tuple[int, int]]:
    """The span of the first number at or after ``pos`` (a trailing ``,``/``.`` left out:
    "1,200." keeps the number, not its punctuation), or None without one or with a call (``[``)
    before it."""
    m = next_answer_number(text, pos)
    if m is None or "[" in text[pos : m.start]:
        return None
    end = m.end
    if text[end - 1] in ",.":
        end -= 1
    return m.start, end


def cut_after_answer(text: str, calls: List[Dict[str, Any]]) -> Tuple[str, List[Dict[str, Any]]]:
    """``text`` up to its answer, and the calls inside that part.

    The answer is the first number after the first call, unless the calls form a chain: while
    the next call's arguments use the number read after the previous call, the answer moves to
    the first number after that next call. A later call that does not continue from that number
    (or any text after the answer) is cut away. Examples::

        " [Calculator(40 / 28) -> 1.43] 1.43 hours, so"
            -> " [Calculator(40 / 28) -> 1.43] 1.43"
        " [Calculator(6 * 7 + 5) -> 47] 47 cards. Then"
            -> " [Calculator(6 * 7 + 5) -> 47] 47"                 (one compound call)
        " [Calculator(28 / 7) -> 4] 4 bags, so [Calculator(4 * 3) -> 12] 12 apples."
            -> " [Calculator(28 / 7) -> 4] 4 bags, so [Calculator(4 * 3) -> 12] 12"
        " [Calculator(2 * 5) -> 10] 10 pens. [Calculator(3 + 8) -> 11] 11"
            -> " [Calculator(2 * 5) -> 10] 10"               (3 + 8 does not use 10)

    A chained call with no number after it (or another call first) ends the chain at the
    previous answer. ``calls``: the generator's records as dicts (``args``; ``start``/``end``:
    the call's span in ``text``); a record without an integer ``end`` is ignored for the cut
    and dropped from the returned calls when the text is cut. An output without a call, or
    without a number after its first call before another call, is returned unchanged."""
    placed = sorted((x for x in calls if isinstance(x.get("end"), int)), key=lambda x: x["end"])
    if not placed:
        return text, calls
    span = _answer_span(text, placed[0]["end"])
    if span is None:
        return text, calls
    for call in placed[1:]:
        start = call.get("start")
        if not isinstance(start, int) or start < span[1]:
            break
        # the chain goes on only from the number the output wrote after the previous call
        written = operands(text[span[0] : span[1]])
        if not written or written[0] not in operands(str(call.get("args", ""))):
            break
        nxt = _answer_span(text, call["end"])
        if nxt is None:
            break
        span = nxt
    cut = span[1]
    return text[:cut], [x for x in calls if isinstance(x.get("end"), int) and x["end"] <= cut]


def _generated(corpus: str) -> bool:
    """A generated corpus (``arithmetic[:N]``, ``ladder[:N]``, ``mix[:N]``) rather than a file."""
    from toolformer.selftrain import ladder, mix, word_problems

    return word_problems.is_spec(corpus) or ladder.is_spec(corpus) or mix.is_spec(corpus)


def offered_demonstrations(text: str, tools: Sequence[str]) -> str:
    """``text``'s blank-line-separated examples that call only offered ``tools`` (an example
    without a call always stays): a model shown a tool it cannot call would call it."""
    from toolformer.syntax import iter_calls

    blocks = [b for b in re.split(r"\n\s*\n", text) if b.strip()]
    keep = [b for b in blocks if all(m.call.tool in tools for m in iter_calls(b))]
    return "".join(b.strip("\n") + "\n\n" for b in keep)


def shuffled_demonstrations(text: str, key: str) -> str:
    """``text``'s examples in an order drawn from ``key`` (an item and sample): with the mixed
    demonstrations in one fixed order, the base model called the tool of the example nearest
    the prompt (the Calendar) on 27 of 32 samples of a smoke run, math and facts included."""
    import hashlib

    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", text) if b.strip()]
    rng = random.Random(int(hashlib.sha1(key.encode()).hexdigest()[:12], 16))
    rng.shuffle(blocks)
    return "".join(b + "\n\n" for b in blocks)


def grow_by_kind(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Grow's samples per curriculum kind: samples, those with a call, calls per tool."""
    out: Dict[str, Dict[str, Any]] = {}
    for r in rows:
        k = out.setdefault(str(r.get("kind")), {"samples": 0, "with_calls": 0, "calls": {}})
        k["samples"] += 1
        k["with_calls"] += bool(r["calls"])
        for x in r["calls"]:
            k["calls"][x["tool"]] = k["calls"].get(x["tool"], 0) + 1
    return out


def kept_by_kind(kept: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, int]]:
    """Improve's kept texts per curriculum kind: with a call and without one."""
    out: Dict[str, Dict[str, int]] = {}
    for r in kept:
        k = out.setdefault(str(r.get("kind")), {"with_call": 0, "no_call": 0})
        k["with_call" if r["calls"] else "no_call"] += 1
    return out


def _texts_kept(rd: "RoundDir") -> int:
    """Training texts the round kept (its last Improve step; round 0: the annotated texts)."""
    steps = [v for k, v in rd.state["stages"].items() if k.startswith("improve_") or k == "augment"]
    return int(steps[-1].get("texts_kept", 0)) if steps else 0


_BRIEF_KEYS = (
    "train",
    "dev",
    "samples",
    "with_calls",
    "calls_ok",
    "threshold",
    "passed",
    "texts_kept",
    "texts",
    "train_loss",
    "score",
    "tool_call_rate",
    "skipped",
)


def _brief(stats: Dict[str, Any]) -> str:
    """A few numbers of a stage's stats for the progress line."""
    parts = [
        f"{k}={round(v, 4) if isinstance(v, float) else v}"
        for k, v in stats.items()
        if k in _BRIEF_KEYS
    ]
    return "(" + ", ".join(parts) + ")" if parts else ""


def _filter_cls(name: str):
    from toolformer.selftrain.filters import get_filter

    return get_filter(name)


def adapter_manifest(config: SelfTrainConfig, round_index: int, texts: int) -> Dict[str, Any]:
    """The ``toolformer.json`` of a round's adapter folder: it names the base model, so that
    ``load_model(<adapter folder>)`` puts the adapter on top of it."""
    from toolformer.finetune import call_syntax, recorded_model
    from toolformer.manifest import chat_roles_of_template

    # a local base model by its absolute path: the adapter loads from any working directory
    out = {
        "format": "toolformer-adapter",
        "version": 1,
        "base_model": recorded_model(config.model),
        "tools": list(config.tools),
        "tool_options": config.tool_options,
        "call_syntax": call_syntax(),
        "selftrain_round": round_index,
        "training_texts": texts,
        "filter": config.improve.filter,
    }
    roles = chat_roles_of_template(
        config.data.prompt_template
    )  # chat talks as the texts were written
    if roles:
        out["chat_roles"] = roles
    return out


def format_report(d: Dict[str, Any]) -> str:
    """The per-round table (markdown) with the best round and the contamination overlap."""
    lines = [
        (
            "| round | dev score | 95% CI | n | dev call rate | dev failed calls | "
            "grown: with calls / ran | texts kept | calls kept | seconds per stage |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    leveled = any(r.get("level") is not None or r.get("dev_by_level") for r in d["rounds"])
    if leveled:  # a climbing curriculum: each round's level and how often Grow was right at it
        lines[0] += " level: Grow right | dev right by level |"
        lines[1] += "---|---|"
    for r in d["rounds"]:
        kept = ", ".join(f"{t} {n}" for t, n in (r.get("calls_kept") or {}).items()) or "-"
        secs = (
            ", ".join(f"{s} {v:.0f}" for s, v in (r.get("seconds") or {}).items() if v is not None)
            or "-"
        )
        lo, hi = r["ci95"]
        g = r.get("grow") or {}
        grown = f"{g['with_calls']}/{g['samples']}, {g['calls_ok']}/{g['calls']}" if g else "-"
        lines.append(
            f"| {r['round']} | {r['dev_score']:.3f} | {lo:.3f}-{hi:.3f} | {r['n']} | "
            f"{r['tool_call_rate']:.2f} | {r['call_failure_rate']:.2f} | {grown} | "
            f"{r.get('texts_kept', '-')} | {kept} | {secs} |"
        )
        if leveled:
            right = r.get("grow_right")
            lines[-1] += (
                f" {r['level']}: {right[0]}/{right[1]} |"
                if r.get("level") is not None and right
                else " - |"
            )
            lines[-1] += (
                " "
                + ", ".join(f"{lvl}: {c}/{n}" for lvl, (c, n) in r["dev_by_level"].items())
                + " |"
                if r.get("dev_by_level")
                else " - |"
            )
    start = "the starting adapter" if d.get("init_adapter") else "the base model"
    best = start if d["best_round"] is None else f"round {d['best_round']}"
    lines.append("")
    lines.append(f"Best: {best} ({d['best_model']}); stopped: {d['stopped']}.")
    if d.get("best_adapter"):
        lines.append(f"Best adapter: {d['best_adapter']}")
    cont = d.get("contamination") or {}
    if cont:
        dup = ", ".join(f"{k} {v}" for k, v in (cont.get("near_duplicates") or {}).items())
        lines.append(
            f"Contamination guard ({cont.get('measure')} >= {cont.get('threshold')}): "
            f"{cont.get('training_texts_checked')} training texts checked; near-duplicates "
            f"dropped: {dup or 'none'}."
        )
    plain = cont.get("plain") or {}
    if plain.get("paragraphs"):
        lines.append(
            f"Plain paragraphs for rehearsal: {plain['paragraphs']} of "
            f"{plain.get('candidates')} (dropped: {plain.get('dropped_13gram')} sharing a "
            f"word 13-gram with {', '.join(plain.get('perplexity_sets') or [])}, "
            f"{plain.get('dropped_near_duplicate')} near-duplicates of evaluation questions)."
        )
    return "\n".join(lines)


def selftrain(
    config: SelfTrainConfig,
    hook: Optional[Hook] = None,
    generator_factory: Optional[Callable[..., Any]] = None,
) -> SelfTrainResult:
    """Run (or resume) self-training with ``config``; see :class:`SelfTrainConfig` and the
    module docstring for the folder layout. Raises :class:`UserError` (one line) for a user's
    mistake: unknown filter, the answer filter without gold answers, a reward model that is not
    a classifier, a run folder made with another config.

    ``generator_factory(model, tokenizer, executor, generation_config)`` replaces
    :class:`~toolformer.generation.ToolGenerator` in Grow (tests script the outputs)."""
    return SelfTrainer(config, hook, generator_factory).run()


def _takes(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes the keyword ``name`` (a ``generator_factory``'s generator may not)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _generate_for(
    generator: Any,
    prompts: List[str],
    docs: Sequence[Dict[str, Any]],
    grammar_starts: Optional[Sequence[int]] = None,
) -> List[Any]:
    """``generator``'s outputs for ``prompts``, each with its doc's tool context where the
    generator takes contexts: the source document (left out of searches) and, for a dates item
    of the mix, its own reference date (what the Calendar returns); and, where it takes them,
    ``grammar_starts`` (each prompt's offset where the problem begins after its
    demonstrations: the call grammars read the text from there)."""
    from toolformer.tools.calendar import as_date

    kwargs: Dict[str, Any] = {}
    if grammar_starts is not None and _takes(generator.generate, "grammar_starts"):
        kwargs["grammar_starts"] = list(grammar_starts)
    if _takes(generator.generate, "contexts"):
        kwargs["contexts"] = [
            replace(_source_context(d), date=as_date(d["date"]) if d.get("date") else None)
            for d in docs
        ]
    return list(generator.generate(prompts, **kwargs))


def _source_context(doc: Dict[str, Any]) -> Any:
    """The tool context of a Grow prompt: the corpus document it opens, which WikiSearch and QA
    leave out of their results (a Wikipedia paragraph is also in the search index: the search
    would hand the model the rest of the paragraph, and the loss filter would keep the copy)."""
    from toolformer.tools.base import SourceDocument, ToolContext
    from toolformer.tools.self_retrieval import default_corpus_title, text_after

    following = text_after(str(doc.get("text", "")), str(doc.get("prompt", "")))
    title = default_corpus_title(doc.get("id"))
    return ToolContext(document=SourceDocument(str(doc.get("id")), title, following))
