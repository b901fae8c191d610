"""Tools a model can call, their registry, and the executor that runs calls safely."""

from toolformer.tools.assembly import create_tool, create_tools  # noqa: F401
from toolformer.tools.base import (  # noqa: F401
    TOOLS,
    AnnotationSettings,
    Tool,
    ToolContext,
    ToolError,
    ToolInputError,
    ToolLoadError,
    ToolResult,
    UnknownToolError,
    available_tools,
    function_tool,
    get_tool_class,
    register_tool,
)
from toolformer.tools.executor import ToolExecutor, sanitize_result  # noqa: F401
