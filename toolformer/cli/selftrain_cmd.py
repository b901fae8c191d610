"""``toolformer selftrain``: a thin click layer over :func:`toolformer.selftrain.selftrain`.

Each option sets one or more fields of the nested
:class:`~toolformer.selftrain.SelfTrainConfig` (:data:`FLAGS`, the one table; help and type come
from the field); ``--config FILE.json`` sets any field, the groups (``grow``, ``dev``,
``finetune``, ...) as objects, and options given on the command line override it. A file written
with the flat keys of before the grouping still loads, with a one-line warning. torch loads only
when it runs.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any, Dict, List, Optional, Tuple

import click

from toolformer.cli.options import field_default, field_help, field_option, parse_key_values
from toolformer.selftrain import flat_keys
from toolformer.selftrain.config import SelfTrainConfig  # light: no torch at import

# option -> the nested field(s) it sets (the first gives its help and type) [, click overrides].
# The command's keyword for an option is its first flag's name (--dev-size -> dev_size).
FLAGS: List[Tuple[str, Tuple[str, ...], Dict[str, Any]]] = [
    ("--output", ("output",), {}),
    ("--model", ("model",), {}),
    ("--init-adapter", ("init_adapter",), {}),
    ("--tools", ("tools",), {"type": str}),
    ("--data-dir", ("data.data_dir",), {}),
    ("--corpus", ("data.corpus",), {}),
    ("--mix", ("data.mix",), {"type": str}),
    ("--max-problem-steps", ("data.max_problem_steps",), {}),
    ("--wiki-docs", ("data.wiki_docs",), {}),
    ("--dev-data", ("dev.data",), {}),
    ("--dev-size", ("dev.size",), {}),
    ("--dev-max-problem-steps", ("dev.max_problem_steps",), {}),
    ("--plain-ratio", ("plain_ratio",), {}),
    ("--round0-docs", ("round0_docs",), {}),
    ("--corpus-size", ("grow.corpus_size",), {}),
    ("--demonstrations", ("grow.demonstrations",), {}),
    ("--demonstrations-rounds", ("grow.demonstrations_rounds",), {}),
    ("--corpus-sizes", ("grow.corpus_sizes",), {"type": str}),
    ("--climb-at", ("grow.climb_at",), {}),
    ("--start-level", ("grow.start_level",), {}),
    ("--review-fraction", ("grow.review_fraction",), {}),
    (
        "--demonstrations-on-climb/--no-demonstrations-on-climb",
        ("grow.demonstrations_on_climb",),
        {},
    ),
    ("--answer-only/--whole-output", ("grow.answer_only",), {}),
    ("--eval-sets", ("data.eval_sets",), {"type": str}),
    ("--max-rounds", ("max_rounds",), {}),
    ("--patience", ("patience",), {}),
    ("--samples", ("grow.samples_per_prompt",), {}),
    ("--no-call-samples", ("grow.no_call_samples",), {}),
    ("--calibrate", ("calibration.enabled",), {}),
    ("--calibration-size", ("calibration.size",), {}),
    ("--calibration-objective", ("calibration.objective",), {}),
    ("--forced-call-samples", ("grow.forced_call_samples",), {}),
    ("--max-kept-per-kind", ("improve.max_kept_per_kind",), {}),
    (
        "--temperature",
        ("grow.generation.temperature",),
        {"help": "Grow: sampling temperature  [default: 0.7]"},
    ),
    (
        "--max-new-tokens",
        ("grow.generation.max_new_tokens",),
        {"help": "Grow: tokens per output, tool results included  [default: 28]"},
    ),
    (
        "--max-calls",
        ("grow.generation.max_calls", "dev.generation.max_calls"),
        {"help": "calls per output in Grow and dev eval (paper: 1)"},
    ),
    ("--filter", ("improve.filter",), {}),
    ("--thresholds", ("improve.thresholds",), {"type": str}),
    ("--improve-steps", ("improve.steps",), {}),
    ("--accumulate", ("improve.accumulate",), {}),
    ("--preference", ("improve.preference",), {}),
    ("--keep-models", ("keep_models",), {}),
    ("--seed", ("seed",), {}),
    ("--threads", ("threads",), {}),
    ("--dtype", ("dtype",), {}),
    ("--progress", ("progress",), {}),
]
# options of KEY=VALUE items (repeatable), merged into a dict field; they come after --tools,
# --answer-only, --corpus-sizes, --max-calls, --accumulate in --help, as they did
_PAIRS = {
    "--tool-option": click.option(
        "--tool-option",
        "tool_option",
        multiple=True,
        help="Tool.option=value (repeatable), over the default Calculator.numbers_from_text=true",
    ),
    "--eval-option": click.option(
        "--eval-option",
        "eval_option",
        multiple=True,
        help="KEY=VALUE GenerationConfig field for the dev eval (repeatable)",
    ),
    "--grow-option": click.option(
        "--grow-option",
        "grow_option",
        multiple=True,
        help="KEY=VALUE GenerationConfig field for Grow (repeatable)",
    ),
    "--filter-option": click.option(
        "--filter-option",
        "filter_option",
        multiple=True,
        help="KEY=VALUE option of the filter (repeatable), e.g. placement=prefix, model=PATH",
    ),
    "--finetune-option": click.option(
        "--finetune-option",
        "finetune_option",
        multiple=True,
        help="KEY=VALUE FinetuneConfig or TrainingArguments field (repeatable), e.g. "
        "max_steps=100, learning_rate=2e-4",
    ),
    "--dpo-option": click.option(
        "--dpo-option",
        "dpo_option",
        multiple=True,
        help="KEY=VALUE DPO setting with --preference dpo (repeatable), e.g. beta=0.1, "
        "learning_rate=5e-5, max_steps=40, per_device_train_batch_size=4",
    ),
}
# the KEY=VALUE options, placed after the flag named here (the --help order of before)
_PAIRS_AFTER = {
    "--tools": ["--tool-option"],
    "--answer-only/--whole-output": ["--eval-option", "--grow-option"],
    "--filter": ["--filter-option"],
    "--accumulate": ["--finetune-option"],
    "--preference": ["--dpo-option"],
}


def _dest(flag: str) -> str:
    return flag.split("/")[0][2:].replace("-", "_")


def _owner(path: str) -> Tuple[type, str]:
    """The dataclass holding the field at ``path`` (``grow.generation.temperature`` ->
    ``(GenerationConfig, "temperature")``)."""
    cls: type = SelfTrainConfig
    *heads, leaf = path.split(".")
    for head in heads:
        cls = typing.get_type_hints(cls)[head]
    return cls, leaf


def _shown_default(flag: str, value: Any) -> Any:
    """The field's default as ``--help`` writes it (``[default: 0.5]``), or False for none: the
    option's own default stays None (not given), so a ``--config`` file can decide."""
    if value is None or value == "" or value == [] or value == {}:
        return False
    if isinstance(value, bool):  # a switch shows the side that is on
        on, _, off = flag.partition("/")
        return (on if value else off or f"--no-{on[2:]}").lstrip("-")
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _option(flag: str, paths: Tuple[str, ...], overrides: Dict[str, Any]):
    """The option of ``flag``; None (not given) lets a --config file decide; ``--help`` shows
    the field's default unless the help text already gives it."""
    cls, leaf = _owner(paths[0])
    kwargs: Dict[str, Any] = {"default": None, "show_default": False, **overrides}
    shown = _shown_default(flag, field_default(cls, leaf))
    if shown is not False and "help" not in overrides:  # as click writes it, no parentheses
        kwargs["help"] = f"{field_help(cls, leaf)}  [default: {shown}]"
    return field_option(cls, leaf, flag, dest=_dest(flag), **kwargs)


def _options() -> List[Any]:
    out = [
        click.option(
            "--config",
            "config_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="JSON file with SelfTrainConfig fields (options override it)",
        )
    ]
    for flag, paths, overrides in FLAGS:
        out.append(_option(flag, paths, overrides))
        out += [_PAIRS[p] for p in _PAIRS_AFTER.get(flag, ())]
    return out


def _csv(value: Optional[str]):
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


def _pairs(items: Tuple[str, ...], what: str) -> Dict[str, Any]:
    return parse_key_values([i.strip() for i in items], what)


def _read_config_file(path: str) -> Dict[str, Any]:
    """A ``--config`` file's settings, nested (flat keys of before the grouping moved, with a
    one-line warning)."""
    from toolformer.errors import UserError

    try:
        base = json.loads(open(path, encoding="utf-8-sig").read())  # a BOM is no error
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"could not read --config {path}: {exc}") from None
    if not isinstance(base, dict):  # a list or a string: one line, not a traceback later
        raise UserError(
            f"--config {path} must hold a JSON object of SelfTrainConfig fields "
            f'({{"max_rounds": 3, ...}}), not a {type(base).__name__}'
        )
    warning = flat_keys.deprecation(base)
    if warning:
        click.echo(f"Warning: --config {path}: {warning}", err=True)
    nested = flat_keys.nest_flat(base)
    unknown = set(nested) - {f.name for f in dataclasses.fields(SelfTrainConfig)}
    if unknown:
        raise UserError(f"--config {path}: unknown field(s) {sorted(unknown)}")
    return nested


def _parse_lists(values: Dict[str, Any]) -> None:
    """The comma-separated options as the fields hold them (lists, the mix's weights)."""
    from toolformer.errors import UserError

    if values.get("corpus_sizes") is not None:
        try:
            values["corpus_sizes"] = [int(v) for v in _csv(values["corpus_sizes"])]
        except ValueError:
            raise UserError(
                f"--corpus-sizes takes comma-separated integers, got {values['corpus_sizes']!r}"
            ) from None
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
            raise UserError(
                f"--thresholds takes comma-separated numbers, got {values['thresholds']!r}"
            ) from None


def build_config(values: Dict[str, Any]) -> SelfTrainConfig:
    """The config from a ``--config`` file and the options given (keywords as the command
    gets them; None = not given)."""
    from toolformer.errors import UserError
    from toolformer.finetune import FinetuneConfig

    path = values.pop("config_file", None)
    base: Dict[str, Any] = _read_config_file(path) if path else {}
    filter_opts = _pairs(values.pop("filter_option", ()) or (), "--filter-option")
    grow_opts = _pairs(values.pop("grow_option", ()) or (), "--grow-option")
    tool_items = values.pop("tool_option", ()) or ()
    eval_opts = _pairs(values.pop("eval_option", ()) or (), "--eval-option")
    ft_opts = _pairs(values.pop("finetune_option", ()) or (), "--finetune-option")
    dpo_opts = _pairs(values.pop("dpo_option", ()) or (), "--dpo-option")
    _parse_lists(values)
    for flag, paths, _ in FLAGS:
        value = values.get(_dest(flag))
        if value is not None:
            for p in paths:
                flat_keys.set_path(base, p, value)
    for opts, where, group in (
        (grow_opts, "--grow-option", "grow"),
        (eval_opts, "--eval-option", "dev"),
    ):
        flat_keys.check_generation_fields(opts, where)
        for key, value in opts.items():
            flat_keys.set_path(base, f"{group}.generation.{key}", value)
    for key, value in dpo_opts.items():  # an unknown name: one line when the config is built
        flat_keys.set_path(base, f"improve.dpo.{key}", value)
    if filter_opts:
        improve = base.get("improve") or {}
        given = improve.get("filter_options") if isinstance(improve, dict) else None
        flat_keys.set_path(base, "improve.filter_options", {**(given or {}), **filter_opts})
    if tool_items:
        from toolformer.tools.assembly import parse_tool_options

        merged = {
            k: dict(v)
            for k, v in (base.get("tool_options") or SelfTrainConfig().tool_options).items()
        }
        for tool, opts in parse_tool_options(tool_items, "--tool-option").items():
            merged.setdefault(tool, {}).update(opts)
        base["tool_options"] = merged
    # own FinetuneConfig fields by name; any other key is a TrainingArguments field (checked by
    # name when training starts)
    ft = SelfTrainConfig().finetune.to_dict()
    given = base.pop("finetune", {}) or {}
    if not isinstance(given, dict):
        raise UserError(
            f"finetune must be an object (JSON {{...}}) of FinetuneConfig fields, got "
            f"{type(given).__name__} {given!r:.60}"
        )
    ft.update(given)
    ft.update(ft_opts)
    base["finetune"] = FinetuneConfig.from_dict(ft)
    try:
        config = SelfTrainConfig.from_dict(base).validate()
    except TypeError as exc:
        raise UserError(f"bad self-training settings: {exc}") from None
    if dpo_opts and config.improve.preference is None:  # they would change nothing
        raise UserError(
            "--dpo-option sets DPO, which runs only with --preference dpo: add it, "
            "or leave --dpo-option out"
        )
    return config


def selftrain_options(fn):
    for option in reversed(_options()):
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
