"""The checkpoint manifest (toolformer.json) has one home, toolformer.manifest, through which
every reader and writer opens the file (a model name's checked fields are read through it by
toolformer.models.checkpoint), and dead code is gone."""

from __future__ import annotations

import pytest

from toolformer.errors import UserError
from toolformer.manifest import MANIFEST_FILE, manifest_base_model, read_manifest, write_manifest
from toolformer.models import manifest_tools


def test_write_read_round_trip_is_atomic(tmp_path):
    path = write_manifest(tmp_path, {"tools": ["Calculator"], "base_model": "smollm2-135m"})
    assert path == tmp_path / MANIFEST_FILE and not list(tmp_path.glob(".*tmp*"))
    assert read_manifest(tmp_path) == {"tools": ["Calculator"], "base_model": "smollm2-135m"}
    assert manifest_tools(str(tmp_path)) == ["Calculator"]
    assert manifest_base_model(tmp_path) == "smollm2-135m"
    assert (
        read_manifest(tmp_path / "nothing") is None and manifest_tools(str(tmp_path / "x")) is None
    )


@pytest.mark.parametrize(
    "content,message",
    [
        ('{"tools": "Calculator"}', "must be a list of tool names"),
        ('{"tools": {"Calculator": 3}}', "must be a list of tool names"),
        ("[1, 2]", "is not a JSON object"),
        ("{oops", "could not read"),
    ],
)
def test_bad_manifests_are_one_line_for_generate_and_eval_alike(tmp_path, content, message):
    from toolformer.cli.generate_cmd import _tool_names
    from toolformer.eval.harness import EvalConfig, resolve_tool_names

    def generate_tools(model):  # generate's route: no --tools given
        return _tool_names(model, None)

    def eval_tools(model):  # eval's route: no tools in the config
        return resolve_tool_names(EvalConfig(model=model))

    (tmp_path / MANIFEST_FILE).write_text(content)
    for reader in (generate_tools, eval_tools, manifest_tools):
        with pytest.raises(UserError, match=message) as e:
            reader(str(tmp_path))
        assert "\n" not in str(e.value)


def test_finetune_writes_through_the_manifest_module():
    import toolformer.finetune as finetune
    import toolformer.manifest as manifest

    assert finetune.write_manifest is manifest.write_manifest
    assert finetune.MANIFEST_FILE == manifest.MANIFEST_FILE


def test_dead_code_is_gone():
    import toolformer.data_aug.annotator as annotator
    import toolformer.data_aug.summary as summary
    import toolformer.finetune as finetune
    import toolformer.models as models
    import toolformer.tools.base as base
    from toolformer.data_aug.types import COUNTERS

    assert not hasattr(finetune, "read_manifest") and not hasattr(models, "timed_load")
    assert not hasattr(base, "ToolTimeoutError")
    assert annotator.COUNTERS is COUNTERS and summary.COUNTERS is COUNTERS
    assert "candidates_abandoned" in COUNTERS
