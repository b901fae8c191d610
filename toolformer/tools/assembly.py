"""Assembling a run's tools: the default tool lists, the ``--tool-option`` grammar, the options
check that runs before any model loads, and :func:`create_tools`, the one place that builds
tools and owns the sharing rule (QA reads with the run's model and searches with the run's
WikiSearch).

Used by ``augment`` (:mod:`toolformer.data_aug.pipeline`), ``eval``
(:mod:`toolformer.eval.harness`), ``generate``/``chat``, ``tools run``, self-training and
:class:`~toolformer.generation.ToolGenerator` (its default tools).
"""

from __future__ import annotations

import json
import re
import sys
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    MutableMapping,
    Optional,
    Sequence,
    Union,
)

from toolformer.errors import ToolOptionError
from toolformer.manifest import manifest_path
from toolformer.models import manifest_dir, manifest_tool_options
from toolformer.paths import DTYPES
from toolformer.tools.base import Tool, get_tool_class

# The paper's five tools (Schick et al. 2023, Section 3): what ``augment`` annotates with.
PAPER_TOOLS = ("Calculator", "Calendar", "WikiSearch", "QA", "MT")
# What each command offers when the user names no tools and the checkpoint's toolformer.json
# names none either. eval leaves MT out: none of its tasks is in another language. generate and
# chat leave QA and MT out: they would load a second model to answer a chat turn. A
# ToolGenerator made without tools ("generator") offers the two that load nothing.
DEFAULT_TOOLS: Dict[str, Sequence[str]] = {
    "augment": PAPER_TOOLS,
    "eval": ("Calculator", "Calendar", "WikiSearch", "QA"),
    "generate": ("Calculator", "Calendar", "WikiSearch"),
    "generator": ("Calculator", "Calendar"),
}

Options = Dict[str, Dict[str, Any]]  # tool name -> {option: value}
_ITEM = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)=(.*)", re.S)


def _value(text: str) -> Any:
    """A value read as JSON when it parses (numbers, booleans, null, lists), else as text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(items: Iterable[str], flag: str = "option") -> Dict[str, Any]:
    """One tool's ``KEY=VALUE`` items -> ``{key: value}`` (later items win), values read as in
    :func:`parse_tool_options`. Keys are not checked here (the tool's constructor checks them).

    Raises :class:`~toolformer.errors.ToolOptionError` with one line for an item without ``=``.
    """
    out: Dict[str, Any] = {}
    for raw in items:
        key, sep, value = raw.partition("=")
        if not sep or not key.strip():
            raise ToolOptionError(f"bad {flag} {raw!r}: use KEY=VALUE, e.g. {flag} top_k=5")
        out[key.strip()] = _value(value)
    return out


def parse_tool_options(items: Iterable[str], flag: str = "tool option") -> Options:
    """``Tool.key=value`` items, or JSON objects ``{"Tool": {"key": value}}``, -> ``{Tool:
    {key: value}}`` (later items win). Tool names are not checked here (see
    :func:`check_tool_options`).

    Raises :class:`~toolformer.errors.ToolOptionError` with one line for any other shape.
    """
    out: Options = {}
    for raw in items:
        item = raw.strip()
        if item.startswith("{"):
            try:
                data = json.loads(item)
            except json.JSONDecodeError as exc:
                raise ToolOptionError(f"{flag} {raw!r} is not valid JSON: {exc.msg}") from None
            if not all(isinstance(v, dict) for v in data.values()):
                raise ToolOptionError(
                    f"{flag} JSON must map tool names to objects, "
                    'e.g. {"WikiSearch": {"top_k": 3}}'
                )
            for tool, opts in data.items():
                out.setdefault(tool, {}).update(opts)
            continue
        m = _ITEM.fullmatch(item)
        if m is None:
            raise ToolOptionError(
                f"{flag} {raw!r}: expected Tool.option=value, e.g. "
                "WikiSearch.corpus=passages.jsonl (or a JSON object)"
            )
        out.setdefault(m.group(1), {})[m.group(2)] = _value(m.group(3))
    return out


def canonical_options(options: Optional[Mapping[str, Mapping[str, Any]]]) -> Options:
    """``options`` keyed by each tool's registered name (``calculator`` -> ``Calculator``);
    an unknown tool raises :class:`~toolformer.tools.base.UnknownToolError` (did you mean)."""
    out: Options = {}
    for name, opts in (options or {}).items():
        out.setdefault(get_tool_class(name).name, {}).update(dict(opts))
    return out


def merge_tool_options(*layers: Optional[Dict[str, Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """Tool options layered per option (later layers win), tool names in their registered
    spelling."""
    out: Dict[str, Dict[str, Any]] = {}
    for layer in layers:
        for tool, opts in canonical_options(layer or {}).items():
            out.setdefault(tool, {}).update(opts)
    return out


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def run_tool_options(
    model: str,
    user: Optional[Dict[str, Dict[str, Any]]] = None,
    say: Optional[Callable[[str], None]] = None,
) -> Dict[str, Dict[str, Any]]:
    """The tool options a run of ``model`` uses: the user's (``user``), over those of the
    checkpoint's manifest that each tool declares safe (``Tool.manifest_safe_options``).

    A manifest comes from whoever made the checkpoint: options it sets beyond a tool's list
    (a corpus file, an index folder, a reader model) are dropped, unless the user gives the
    same option (then the user's value is used). ``say`` (default: a line on stderr) gets one
    line naming the options taken from the manifest and one naming those dropped.

    Raises :class:`~toolformer.errors.UserError` for a malformed ``tool_options`` or an unknown
    tool in it (see :func:`toolformer.models.checkpoint.manifest_tool_options`).
    """
    say = say or _stderr
    user = canonical_options(user or {})
    taken: Dict[str, Dict[str, Any]] = {}
    dropped: List[str] = []
    for tool, opts in canonical_options(manifest_tool_options(model)).items():
        safe = getattr(get_tool_class(tool), "manifest_safe_options", frozenset())
        for key, value in opts.items():
            if key in user.get(tool, {}):
                continue  # the user's own value wins: nothing of the manifest's is used
            if key in safe:
                taken.setdefault(tool, {})[key] = value
            else:
                dropped.append(f"{tool}.{key}")
    if taken or dropped:
        where = manifest_path(manifest_dir(model))
        if taken:
            shown = ", ".join(
                f"{t}.{k}={_shown(v)}" for t, o in taken.items() for k, v in o.items()
            )
            say(f"tool options from {where}: {shown}")
        if dropped:
            say(
                f"ignored tool options from {where}: {', '.join(dropped)} (a checkpoint's "
                "manifest may not choose files, folders or models; to use one, pass it yourself: "
                "--tool-option TOOL.OPTION=VALUE)"
            )
    return merge_tool_options(taken, user)


def check_tool_options(options: Optional[Mapping[str, Mapping[str, Any]]]) -> None:
    """Check every tool option now, before any model loads: unknown tools, unknown options, wrong
    types and values a constructor rejects all raise a one-line
    :class:`~toolformer.tools.base.ToolOptionsError` naming the tool and the option. The tools
    are built and dropped: constructors load nothing (that is :meth:`Tool.setup`)."""
    for name, opts in canonical_options(options).items():
        get_tool_class(name).from_options(**opts)


def _same_reader(
    qa_options: Mapping[str, Any], model_name: Optional[str], dtype: Optional[str]
) -> bool:
    """Whether QA's reader would be the run's model: same model name and same dtype."""
    from toolformer.tools.qa import QAConfig  # QA's module loads its retrieval parts: only here

    if model_name is None:
        return False
    same_model = qa_options.get("model", QAConfig.model) == model_name
    run_dtype = DTYPES.get(str(dtype or "fp32").lower())
    return (
        same_model and DTYPES.get(str(qa_options.get("dtype", QAConfig.dtype)).lower()) == run_dtype
    )


def create_tools(
    names: Union[None, str, Iterable[str]] = None,
    options: Optional[Mapping[str, Mapping[str, Any]]] = None,
    *,
    model: Any = None,
    tokenizer: Any = None,
    model_name: Optional[str] = None,
    dtype: Optional[str] = "fp32",
    built: Optional[MutableMapping[str, Tool]] = None,
) -> Dict[str, Tool]:
    """The tools ``names`` (a list, or a comma-separated string; None: the paper's five) by
    registered name, in that order, each made by :meth:`Tool.from_options` with ``options``
    (tool name -> its options; names case-insensitive).

    The sharing rule lives here and only here: QA searches with the run's WikiSearch (built
    with the run's WikiSearch options, also when WikiSearch itself is not offered) unless QA has
    its own ``search``, ``corpus`` or ``retriever`` option; and reads with ``model`` (the run's
    loaded model) when its reader is ``model_name`` in the same ``dtype``, instead of loading a
    second copy. ``built``: tools made earlier in the run, reused and added to (eval builds a
    task's tools once per run, not once per task).

    Raises :class:`~toolformer.tools.base.UnknownToolError` for an unknown name and
    :class:`~toolformer.tools.base.ToolOptionsError` (one line) for a bad option.
    """
    if names is None:
        names = PAPER_TOOLS
    elif isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    built = built if built is not None else {}
    options = canonical_options(options)
    out: Dict[str, Tool] = {}
    for name in names:
        cls = get_tool_class(name)
        if cls.name not in built:
            opts = dict(options.get(cls.name, {}))
            if cls.name == "QA":
                if not {"search", "corpus", "retriever"} & set(opts):
                    search = create_tools(["WikiSearch"], options, built=built)["WikiSearch"]
                    opts["search"] = search
                if model is not None and _same_reader(opts, model_name, dtype):
                    opts.update(model=model, tokenizer=tokenizer)
            built[cls.name] = cls.from_options(**opts)
        out[cls.name] = built[cls.name]
    return out


def create_tool(name: str, **options: Any) -> Tool:
    """The tool ``name`` made from keyword ``options`` by :func:`create_tools` (so a QA made
    alone searches with a WikiSearch made by the same rule)."""
    cls = get_tool_class(name)
    return create_tools([cls.name], {cls.name: options})[cls.name]


def setup_tools(tools: Mapping[str, Tool]) -> None:
    """Set up the tools that want it before the first call (``Tool.setup_at_start``: indexes,
    QA's reader), so that no call spends the executor's timeout on loading."""
    for tool in tools.values():
        if getattr(tool, "setup_at_start", False):
            tool.setup()
