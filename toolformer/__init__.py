"""toolformer: language models that teach themselves to use tools (Schick et al. 2023)."""

__version__ = "0.1.0"

from toolformer.syntax import APICall, find_calls, format_call, parse_call, strip_calls  # noqa: E402

__all__ = ["APICall", "find_calls", "format_call", "parse_call", "strip_calls", "__version__"]
