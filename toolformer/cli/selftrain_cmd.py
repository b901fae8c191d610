"""``toolformer selftrain``: a thin click layer over :func:`toolformer.selftrain.selftrain`.

Options map onto :class:`~toolformer.selftrain.SelfTrainConfig` fields (defaults and help come
from it); ``--config FILE.json`` sets any field, nested ones (``finetune``, ``annotator``)
included, and options given on the command line override it. torch loads only when it runs.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Optional, Tuple

import click

from toolformer.cli.options import field_option, parse_key_values
from toolformer.generation.trigger import OBJECTIVES
from toolformer.selftrain.config import SelfTrainConfig  # light: no torch at import

_FIELDS = {f.name: f for f in dataclasses.fields(SelfTrainConfig)}


def _opt(flag: str, name: str, **kwargs: Any):
    """An option for a SelfTrainConfig field; None (not given) lets a --config file decide."""
    kwargs.setdefault("default", None)
    return field_option(SelfTrainConfig, name, flag, **kwargs)


def _csv(value: Optional[str]):
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _pairs(items: Tuple[str, ...], what: str) -> Dict[str, Any]:
    return parse_key_values([i.strip() for i in items], what)


_OPTIONS = [
    click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                 help="JSON file with SelfTrainConfig fields (options override it)"),
    _opt("--output", "output", type=str),
    _opt("--model", "model", type=str),
    _opt("--init-adapter", "init_adapter", type=str),
    _opt("--tools", "tools", type=str),
    click.option("--tool-option", "tool_option", multiple=True,
                 help="Tool.option=value (repeatable), over the default Calculator.numbers_from_text=true"),
    _opt("--data-dir", "data_dir", type=str),
    _opt("--corpus", "corpus", type=str),
    _opt("--mix", "mix", type=str),
    _opt("--max-problem-steps", "max_problem_steps", type=int),
    _opt("--wiki-docs", "wiki_docs", type=int),
    _opt("--dev-data", "dev_data", type=str),
    _opt("--dev-size", "dev_size", type=int),
    _opt("--dev-max-problem-steps", "dev_max_problem_steps", type=int),
    _opt("--plain-ratio", "plain_ratio", type=float),
    _opt("--round0-docs", "round0_docs", type=int),
    _opt("--corpus-size", "corpus_size", type=int),
    _opt("--demonstrations", "demonstrations", type=str),
    _opt("--demonstrations-rounds", "demonstrations_rounds", type=int),
    _opt("--corpus-sizes", "corpus_sizes", type=str),
    click.option("--answer-only/--whole-output", "answer_only", default=None,
                 help=_FIELDS["answer_only"].metadata["help"]),
    click.option("--eval-option", "eval_option", multiple=True,
                 help="KEY=VALUE GenerationConfig field for the dev eval (repeatable)"),
    click.option("--grow-option", "grow_option", multiple=True,
                 help="KEY=VALUE GenerationConfig field for Grow (repeatable)"),
    _opt("--eval-sets", "eval_sets", type=str),
    _opt("--max-rounds", "max_rounds", type=int),
    _opt("--patience", "patience", type=int),
    _opt("--samples", "samples_per_prompt", type=int),
    _opt("--no-call-samples", "no_call_samples", type=int),
    click.option("--calibrate/--no-calibrate", "calibrate", default=None,
                 help=_FIELDS["calibrate"].metadata["help"]),
    _opt("--calibration-size", "calibration_size", type=int),
    _opt("--calibration-objective", "calibration_objective", type=click.Choice(OBJECTIVES)),
    _opt("--forced-call-samples", "forced_call_samples", type=int),
    _opt("--max-kept-per-kind", "max_kept_per_kind", type=int),
    _opt("--temperature", "temperature", type=float),
    _opt("--max-new-tokens", "max_new_tokens", type=int),
    _opt("--max-calls", "max_calls", type=int),
    _opt("--filter", "filter", type=str),
    click.option("--filter-option", "filter_option", multiple=True,
                 help="KEY=VALUE option of the filter (repeatable), e.g. placement=prefix, model=PATH"),
    _opt("--thresholds", "thresholds", type=str),
    _opt("--improve-steps", "improve_steps", type=int),
    click.option("--accumulate/--no-accumulate", "accumulate", default=None,
                 help=_FIELDS["accumulate"].metadata["help"]),
    click.option("--finetune-option", "finetune_option", multiple=True,
                 help="KEY=VALUE FinetuneConfig or TrainingArguments field (repeatable), e.g. max_steps=100, learning_rate=2e-4"),
    _opt("--keep-models", "keep_models"),
    _opt("--seed", "seed", type=int),
    _opt("--threads", "threads", type=int),
    _opt("--dtype", "dtype", type=str),
    click.option("--progress/--no-progress", "progress", default=None, help="progress bars"),
]


def build_config(values: Dict[str, Any]) -> SelfTrainConfig:
    """The config from a ``--config`` file and the options given (None = not given)."""
    from toolformer.errors import UserError
    from toolformer.finetune import FinetuneConfig

    base: Dict[str, Any] = {}
    path = values.pop("config_file", None)
    if path:
        try:
            base = json.loads(open(path, encoding="utf-8-sig").read())  # a BOM is no error
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"could not read --config {path}: {exc}") from None
        if not isinstance(base, dict):  # a list or a string: one line, not a traceback later
            raise UserError(f"--config {path} must hold a JSON object of SelfTrainConfig fields "
                            f"({{\"max_rounds\": 3, ...}}), not a {type(base).__name__}")
        unknown = set(base) - set(_FIELDS)
        if unknown:
            raise UserError(f"--config {path}: unknown field(s) {sorted(unknown)}")
    filter_opts = _pairs(values.pop("filter_option", ()) or (), "--filter-option")
    grow_opts = _pairs(values.pop("grow_option", ()) or (), "--grow-option")
    tool_items = values.pop("tool_option", ()) or ()
    eval_opts = _pairs(values.pop("eval_option", ()) or (), "--eval-option")
    if values.get("corpus_sizes") is not None:
        try:
            values["corpus_sizes"] = [int(v) for v in _csv(values["corpus_sizes"])]
        except ValueError:
            raise UserError(f"--corpus-sizes takes comma-separated integers, got {values['corpus_sizes']!r}") from None
    ft_opts = _pairs(values.pop("finetune_option", ()) or (), "--finetune-option")
    for key in ("tools", "eval_sets"):
        if values.get(key) is not None:
            values[key] = _csv(values[key])
    if isinstance(values.get("mix"), str):  # "math=0.4,facts=0.25": the config holds the weights
        from toolformer.selftrain.mix import parse_mix

        values["mix"] = parse_mix(values["mix"])
    if values.get("thresholds") is not None:
        try:
            values["thresholds"] = [float(v) for v in _csv(values["thresholds"])]
        except ValueError:
            raise UserError(f"--thresholds takes comma-separated numbers, got {values['thresholds']!r}") from None
    base.update({k: v for k, v in values.items() if v is not None})
    if filter_opts:
        base["filter_options"] = {**base.get("filter_options", {}), **filter_opts}
    if tool_items:
        from toolformer.tools.assembly import parse_tool_options

        merged = {k: dict(v) for k, v in (base.get("tool_options") or SelfTrainConfig().tool_options).items()}
        for tool, opts in parse_tool_options(tool_items).items():
            merged.setdefault(tool, {}).update(opts)
        base["tool_options"] = merged
    if grow_opts:
        base["grow_options"] = {**base.get("grow_options", {}), **grow_opts}
    if eval_opts:
        base["eval_options"] = {**base.get("eval_options", {}), **eval_opts}
    # own FinetuneConfig fields by name; any other key is a TrainingArguments field (checked by
    # name when training starts)
    ft = SelfTrainConfig().finetune.to_dict()
    given = base.pop("finetune", {}) or {}
    if not isinstance(given, dict):
        raise UserError(f"finetune must be an object (JSON {{...}}) of FinetuneConfig fields, got "
                        f"{type(given).__name__} {given!r:.60}")
    ft.update(given)
    ft.update(ft_opts)
    base["finetune"] = FinetuneConfig.from_dict(ft)
    try:
        return SelfTrainConfig(**base).validate()
    except TypeError as exc:
        raise UserError(f"bad self-training settings: {exc}") from None


def selftrain_options(fn):
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


@click.command("selftrain")
@selftrain_options
def selftrain(**values: Any) -> None:
    """Self-train the model to use its tools: round 0 is the paper's pipeline, then ReST rounds
    (Grow with the current model, Improve with a filter, LoRA fine-tuning), each scored on a
    dev split; the best round is kept. Rerun the same command to resume."""
    config = build_config(values)
    from toolformer.selftrain import selftrain as run

    result = run(config)
    click.echo(str(result))
