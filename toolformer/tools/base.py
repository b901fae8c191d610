"""The tool interface, its result type and errors, and the registry (with entry-point plugins).

A tool is a class with a ``name``, a ``description``, a few-shot annotation ``prompt`` (a template
with one ``{text}`` slot, ending in ``Output:``), its annotation settings from the paper's
Appendix A, and a ``run(args, context)`` that returns text. Built-in tools are registered lazily
as ``"module:attr"`` strings so that listing them imports nothing heavy; third-party tools come in
through the ``toolformer.tools`` entry-point group.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import inspect
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, ClassVar, Dict, FrozenSet, List, Mapping, Optional, Type, Union

from toolformer.errors import MissingDependencyError, ToolOptionError, UserError
from toolformer.plugin_options import build_options, check_options, option_types
from toolformer.registry import Registry, UnknownNameError

ENTRY_POINT_GROUP = "toolformer.tools"


class ToolError(Exception):
    """A tool could not produce a result; the message is meant for a user."""


class ToolInputError(ToolError):
    """The call's arguments are not valid for this tool."""


class UnknownToolError(UnknownNameError):
    """No tool of that name is registered (a ``KeyError`` and a ``UserError``)."""

    kind = "tool"


class ToolOptionsError(ToolError, ToolOptionError, ValueError):
    """A tool option the tool does not take, or a value it does not accept (one line, naming the
    tool, the option and what it accepts); raised before any model loads. Also a ``ValueError``,
    as a bad constructor argument."""


class ToolLoadError(ToolError, UserError):
    """A registered tool (built-in or plugin) could not be imported or is not a Tool class.

    Also a :class:`~toolformer.errors.UserError`, so that every command prints it on one line.
    """


@dataclass(frozen=True)
class SourceDocument:
    """The document a call is placed in while that document is being annotated.

    Retrieval tools (WikiSearch, QA) leave this document out of their results
    (:mod:`toolformer.tools.self_retrieval`): when the annotated text is also in the search
    corpus, a search finds it and its result hands the model the very next words, a call that
    passes the loss filter by copying. Absent at generation time (no document is known).
    """

    id: Optional[str] = None
    title: Optional[str] = None
    following: str = ""  # the document's text right after the call (its next words)


@dataclass(frozen=True)
class ToolContext:
    """What a tool may know about the document it is called from (the Calendar uses ``date``,
    WikiSearch and QA leave ``document`` out of their results)."""

    date: Optional[_dt.date] = None
    document: Optional[SourceDocument] = None


@dataclass(frozen=True)
class AnnotationSettings:
    """Per-tool annotation thresholds (paper, Appendix A)."""

    tau_s: float = 0.05  # keep positions with p("[") > tau_s
    k: int = 5  # at most k positions per document
    m: int = 5  # candidate calls sampled per position
    tau_f: float = 1.0  # keep a call if L- - L+ >= tau_f


RETRIEVAL_SETTINGS = AnnotationSettings(tau_s=0.05, k=5, m=5, tau_f=1.0)
COMPUTE_SETTINGS = AnnotationSettings(tau_s=0.0, k=20, m=10, tau_f=0.5)


class ToolOutput(str):
    """A tool's result text with counts about how it was made (``notes``, name -> int), e.g.
    the passages a search left out as the annotated document itself; the executor copies them
    into :attr:`ToolResult.notes`. A plain ``str`` result has no notes."""

    notes: Dict[str, int]

    def __new__(cls, text: str, notes: Optional[Mapping[str, int]] = None) -> "ToolOutput":
        obj = super().__new__(cls, text)
        obj.notes = {k: int(v) for k, v in (notes or {}).items() if v}
        return obj


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one call: ``output`` on success, ``error`` otherwise. Never raised.
    ``notes``: the tool's counts (:class:`ToolOutput`), also on a result served from the cache."""

    tool: str
    args: str
    output: Optional[str] = None
    error: Optional[str] = None
    seconds: float = 0.0
    cached: bool = False
    timed_out: bool = False
    notes: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.output is not None


def load_prompt(filename: str) -> str:
    """Read a few-shot prompt shipped in ``toolformer/tools/prompts``.

    Trailing whitespace is dropped so that a prompt ends exactly in ``Output:`` (the document's
    first token carries its own leading space).
    """
    path = resources.files("toolformer.tools").joinpath("prompts", filename)
    if not path.is_file():
        raise ToolError(f"no prompt file {filename!r} in toolformer/tools/prompts")
    return path.read_text("utf-8").rstrip()


class Tool(ABC):
    """Base class of every tool. Subclasses set the class attributes and implement ``run``.

    ``run`` raises :class:`ToolError` (or :class:`ToolInputError`) with a one-line message on
    failure; the :class:`~toolformer.tools.executor.ToolExecutor` turns that, and anything else a
    tool raises, into a :class:`ToolResult` so that no failure reaches a pipeline or a generation.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    prompt: ClassVar[str] = ""
    annotation: ClassVar[AnnotationSettings] = RETRIEVAL_SETTINGS
    example_args: ClassVar[str] = ""
    arg_grammar: ClassVar[Any] = None  # an ArgGrammar (toolformer.grammar); None: PERMISSIVE
    argument_name: ClassVar[str] = "input"  # the parameter's name in the tool's JSON schema
    uses_context: ClassVar[bool] = False  # results depend on ToolContext (cache key includes it)
    # the dataclass of the options a user may give (e.g. QAConfig); None: the __init__ keywords
    options_class: ClassVar[Optional[type]] = None
    # set up (index built, model loaded) before the first call runs under the executor's
    # timeout; False: on first use (MT: most documents never reach it)
    setup_at_start: ClassVar[bool] = False
    # the options a checkpoint's toolformer.json may set (what the tool's behaviour learned in
    # training needs, e.g. the Calculator's numbers_from_text): a manifest is data from whoever
    # made the checkpoint, so files, folders and models it names are never used unless the user
    # passes them (toolformer.tools.assembly.run_tool_options)
    manifest_safe_options: ClassVar[FrozenSet[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if inspect.isabstract(cls):
            return
        for attr in ("name", "description"):
            value = getattr(cls, attr, None)
            if not isinstance(value, str) or not value.strip():
                raise TypeError(f"tool class {cls.__name__} must define a non-empty {attr!r}")
        if not cls.name.isidentifier():
            raise TypeError(f"tool name {cls.name!r} must be an identifier (letters, digits, _)")
        if cls.prompt and "{text}" not in cls.prompt:
            raise TypeError(f"tool {cls.name}: the annotation prompt needs a {{text}} slot")
        if not isinstance(cls.annotation, AnnotationSettings):
            raise TypeError(f"tool {cls.name}: 'annotation' must be an AnnotationSettings")

    def parse_args(self, args: str) -> str:
        """Normalise the argument text; raise :class:`ToolInputError` if it is unusable."""
        value = args.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1].strip()
        if not value:
            raise ToolInputError(
                f"{self.name} needs an argument, e.g. {self.name}({self.example_args})"
            )
        return value

    def check_call(self, args: str) -> Optional[str]:
        """Why ``args`` do not make a call of this tool worth learning (one line), or None.

        Annotation drops such candidates before they are run or scored (counted as
        ``candidates_invalid``): a call that passes the loss filter by echoing text teaches
        nothing. The default accepts whatever :meth:`parse_args` accepts; tools state more
        (the Calendar takes no arguments, the Calculator needs an operation).
        """
        try:
            self.parse_args(args)
        except ToolInputError as exc:
            return str(exc)
        return None

    @abstractmethod
    def run(self, args: str, context: Optional[ToolContext] = None) -> str:
        """Execute the call and return its result text."""

    def __call__(self, args: str, context: Optional[ToolContext] = None) -> str:
        return self.run(args, context)

    def context_key(self, context: Optional[ToolContext]) -> Any:
        """The part of ``context`` that the result depends on (hashable; the executor's cache
        key holds it): the whole context for a tool that ``uses_context``, else None."""
        return context if self.uses_context else None

    def argument_grammar(self, before: Optional[str] = None) -> Any:
        """What this tool's arguments may be: a :class:`~toolformer.grammar.ArgGrammar` that
        constrained decoding follows, or :data:`~toolformer.grammar.NO_CALL` when the
        tool cannot be called after ``before``. ``before``: the text before the call (None: any
        text).

        The default is the class attribute ``arg_grammar`` if set, else
        :data:`~toolformer.grammar.PERMISSIVE` (text without brackets, ``->`` or line breaks).
        """
        from toolformer.grammar import PERMISSIVE

        return getattr(self, "arg_grammar", None) or PERMISSIVE

    def available(self, before: str) -> bool:
        """Whether a call of this tool may open after the text ``before``: False exactly when
        :meth:`argument_grammar` of ``before`` is :data:`~toolformer.grammar.NO_CALL` (asked
        at every decoding step before a ``[`` may be written, so it must be cheap). Always
        True here."""
        return True

    def format_prompt(self, text: str) -> str:
        """The annotation prompt P(x) with the document in it."""
        if not self.prompt:
            raise ToolError(f"tool {self.name} has no annotation prompt")
        return self.prompt.replace("{text}", text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- options ---------------------------------------------------------------------------
    @classmethod
    def option_types(cls) -> Dict[str, Any]:
        """Each option a tool takes -> its type hint (``Any`` when it has none): the keyword
        parameters of ``__init__`` (first: a keyword may take more than its field, e.g. a loaded
        model), then the fields of ``options_class``."""
        found = option_types(cls.__init__)
        if cls.options_class is not None and dataclasses.is_dataclass(cls.options_class):
            for name, hint in option_types(cls.options_class).items():
                found.setdefault(name, hint)
        return found

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """Raise :class:`ToolOptionsError` for an option the tool does not take (with a "did you
        mean") or a value of the wrong type (``decimals='abc'``: "expected an integer"); the one
        check of :mod:`toolformer.plugin_options`, shared with prefilters and filters."""
        check_options(cls.name, options, cls.option_types(), error=ToolOptionsError)

    @classmethod
    def build_config(cls, options: Mapping[str, Any], base: Any = None) -> Any:
        """The tool's ``options_class`` built from ``options`` (over ``base`` when given), checked
        as :meth:`check_options` checks them; what constructors with an options class call."""
        return build_options(cls.options_class, options, cls.name, ToolOptionsError, base)

    @classmethod
    def from_options(cls, **options: Any) -> "Tool":
        """The tool built from ``options``, every option checked once, here.

        Raises :class:`ToolOptionsError` (a :class:`~toolformer.errors.UserError`) naming the
        tool, the option and what it accepts, for unknown names, wrong types and values that
        the constructor rejects (``Calculator(decimals=99)``).
        """
        cls.check_options(options)
        try:
            return cls(**options)
        except ToolOptionsError:
            raise
        except (TypeError, ValueError, ToolError, UserError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            shown = ", ".join(f"{k}={v!r}" for k, v in options.items() if _is_plain(v))
            raise ToolOptionsError(f"{cls.name} options {shown or '(none)'}: {first}") from None

    # -- lifecycle -------------------------------------------------------------------------
    def setup(self) -> "Tool":
        """Load what the tool needs (an index, a model) once; thread-safe and idempotent, so
        calling it again, or from several threads, costs nothing. Returns the tool.

        The one lifecycle of every tool: subclasses put their loading in :meth:`_setup`, and
        call ``self.setup()`` where they first need it (a call before the run set them up)."""
        if self.__dict__.get("_is_setup"):
            return self
        with _instance_lock(self):
            if not self.__dict__.get("_is_setup"):
                self._setup()
                self.__dict__["_is_setup"] = True
        return self

    def _setup(self) -> None:
        """Subclasses load their heavy parts here (runs once, under the tool's lock); the
        default loads nothing."""


_LOCKS_GUARD = threading.Lock()


def _instance_lock(tool: Tool) -> "threading.RLock":
    """The tool's setup lock, made on first use (subclasses need not call a base __init__)."""
    lock = tool.__dict__.get("_setup_lock")
    if lock is None:
        with _LOCKS_GUARD:
            lock = tool.__dict__.setdefault("_setup_lock", threading.RLock())
    return lock


def _is_plain(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool, list, dict))


# --------------------------------------------------------------------------- registry

_BUILTINS: Dict[str, str] = {
    "Calculator": "toolformer.tools.calculator:Calculator",
    "Calendar": "toolformer.tools.calendar:Calendar",
    "WikiSearch": "toolformer.tools.wiki_search:WikiSearch",
    "QA": "toolformer.tools.qa:QA",
    "MT": "toolformer.tools.translate:MT",
}
ToolSpec = Union[str, Type[Tool]]


def _check_tool_class(name: str, obj: Any) -> Optional[str]:
    if not (inspect.isclass(obj) and issubclass(obj, Tool)):
        return "is not a Tool subclass"
    if inspect.isabstract(obj):
        return f"names {obj.__name__}, which does not implement run()"
    return None


def _builtin_registry() -> Registry[Type[Tool]]:
    """A registry of the built-in tools that reads the plugins' entry points on first use."""
    reg: Registry[Type[Tool]] = Registry(
        "tool",
        entry_points=ENTRY_POINT_GROUP,
        validate=_check_tool_class,
        load_error=ToolLoadError,
        unknown_error=UnknownToolError,
        passthrough=(MissingDependencyError,),
        missing_dependency=MissingDependencyError,
    )
    for name, spec in _BUILTINS.items():
        reg.register(name, spec)
    return reg


TOOLS: Registry[Type[Tool]] = _builtin_registry()


def register_tool(cls: Optional[Type[Tool]] = None, *, name: Optional[str] = None) -> Any:
    """Class decorator (``@register_tool`` or ``@register_tool(name=...)``) adding a tool
    (a class registered again under the same name replaces the old one)."""

    def add(tool_cls: Type[Tool]) -> Type[Tool]:
        if not (inspect.isclass(tool_cls) and issubclass(tool_cls, Tool)):
            raise TypeError("register_tool expects a Tool subclass")
        TOOLS.register(name or tool_cls.name, tool_cls, overwrite=True)
        return tool_cls

    return add(cls) if cls is not None else add


def available_tools() -> List[str]:
    """Names of all registered tools (built-ins, decorated classes and entry points)."""
    return TOOLS.names()


def get_tool_class(name: str) -> Type[Tool]:
    """The class registered under ``name`` (case-insensitive); imports it on first use.

    Raises :class:`UnknownToolError` for an unknown name, :class:`MissingDependencyError` when
    a package the tool imports is missing, and :class:`ToolLoadError` for a broken registration.
    """
    return TOOLS.get(name)


def function_tool(
    name: str,
    description: str = "",
    prompt: str = "",
    annotation: AnnotationSettings = RETRIEVAL_SETTINGS,
    example_args: str = "",
) -> Callable[[Callable[..., str]], Type[Tool]]:
    """Build (and register) a tool from a plain ``f(args: str) -> str`` function.

    The description defaults to the function's docstring; a function with a second parameter
    also receives the :class:`ToolContext` (and the tool is then marked ``uses_context``).
    """

    def wrap(fn: Callable[..., str]) -> Type[Tool]:
        takes_context = len(inspect.signature(fn).parameters) >= 2

        def run(self: Tool, args: str, context: Optional[ToolContext] = None) -> str:
            value = self.parse_args(args)
            return str(fn(value, context) if takes_context else fn(value))

        cls = type(
            name,
            (Tool,),
            {
                "name": name,
                "description": description or (inspect.getdoc(fn) or "").strip(),
                "prompt": prompt,
                "annotation": annotation,
                "example_args": example_args,
                "uses_context": takes_context,
                "run": run,
                "__doc__": fn.__doc__,
                "__module__": getattr(fn, "__module__", __name__),
            },
        )
        return register_tool(cls)

    return wrap
