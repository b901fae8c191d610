"""One way to give a plugin options (tools, prefilters, Improve filters): unknown names and
wrong types are one line with a "did you mean"; the old prefilter fields of AnnotatorConfig
still work, mapped once, and runs recorded with them resume."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import pytest

from toolformer.data_aug.config import AugmentConfig
from toolformer.data_aug.heuristics import (
    CalculatorPrefilterOptions,
    MTPrefilterOptions,
    prefilter_options,
)
from toolformer.data_aug.types import AnnotatorConfig
from toolformer.errors import UserError
from toolformer.plugin_options import build_options, check_options, option_types
from toolformer.selftrain.filters import get_filter
from toolformer.tools.base import ToolOptionsError
from toolformer.tools.calculator import Calculator


@dataclass
class Knobs:
    window: int = 5
    rate: float = 0.5
    name: Optional[str] = None
    on: bool = True


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_unknown_option_is_one_line_with_did_you_mean():
    with pytest.raises(UserError) as exc:
        build_options(Knobs, {"windw": 3}, "Thing")
    assert one_line(exc) == (
        "Thing has no option 'windw'. Did you mean 'window'? Its options: name, on, rate, window."
    )


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("window", "3", "an integer"),
        ("window", True, "an integer"),
        ("rate", "x", "a number"),
        ("name", 3, "a string"),
        ("on", 1, "true or false"),
    ],
)
def test_wrong_type_is_one_line(key, value, words):
    with pytest.raises(UserError) as exc:
        build_options(Knobs, {key: value}, "Thing")
    assert one_line(exc) == f"Thing option {key}={value!r}: expected {words}"


def test_build_options_builds_over_defaults_or_a_base():
    assert build_options(Knobs, {"rate": 1, "name": None}) == Knobs(rate=1, name=None)
    assert build_options(Knobs, {"window": 9}, base=Knobs(rate=0.1)) == Knobs(window=9, rate=0.1)
    with pytest.raises(ToolOptionsError):  # the error class is the plugin kind's
        build_options(Knobs, {"nope": 1}, "Thing", ToolOptionsError)


def test_callables_declare_options_by_their_keywords():
    def make(context=None, depth: int = 2, *, label: str = "a", **rest):
        return depth

    assert option_types(make, skip=("context",)) == {"depth": int, "label": str}
    with pytest.raises(UserError, match="needs the option"):
        check_options("f", {}, {"x": int}, required=["x"])


def test_every_plugin_kind_uses_the_helper():
    with pytest.raises(
        ToolOptionsError, match="Calculator has no option 'decimal'. Did you mean 'decimals'"
    ):
        Calculator.check_options({"decimal": 2})
    with pytest.raises(
        UserError, match="filter 'loss' has no option 'horizn'. Did you mean 'horizon'"
    ):
        get_filter("loss").check_options({"horizn": 3})
    with pytest.raises(UserError, match=r"filter 'loss' option horizon='3': expected an integer"):
        get_filter("loss").check_options({"horizon": "3"})
    with pytest.raises(
        UserError, match="Calculator prefilter has no option 'window'. Did you mean 'window_tokens'"
    ):
        prefilter_options("calculator", {"window": 50})
    with pytest.raises(
        UserError, match=r"MT prefilter option min_foreign_tokens='x': expected an integer"
    ):
        prefilter_options("MT", {"min_foreign_tokens": "x"})
    with pytest.raises(UserError, match="Calendar prefilter takes no options"):
        prefilter_options("Calendar", {"x": 1})
    assert prefilter_options("Calendar") is None
    assert prefilter_options("mt", {"min_foreign_tokens": 4}) == MTPrefilterOptions(4)


def test_prefilter_options_reach_the_rules_and_are_checked_before_a_run():
    cfg = AnnotatorConfig(prefilter_options={"Calculator": {"window_tokens": 50}})
    settings = cfg.prefilter_settings(["Calculator", "MT", "WikiSearch"])
    assert settings == {
        "Calculator": CalculatorPrefilterOptions(window_tokens=50),
        "MT": MTPrefilterOptions(),
    }
    bad = AugmentConfig(
        tools=["Calculator"], annotator=AnnotatorConfig(prefilter_options={"Calculater": {}})
    )
    with pytest.raises(UserError, match="Calculator"):  # did you mean, before any model loads
        bad.validate()


def test_old_fields_are_aliases_mapped_once_with_a_deprecation_note():
    with pytest.warns(DeprecationWarning, match="calc_window_tokens.*prefilter_options"):
        cfg = AnnotatorConfig(calc_window_tokens=50, mt_min_foreign_tokens=4)
    assert cfg.prefilter_options == {
        "Calculator": {"window_tokens": 50},
        "MT": {"min_foreign_tokens": 4},
    }
    assert cfg.calc_window_tokens is None and cfg.mt_min_foreign_tokens is None  # mapped once
    assert cfg.prefilter_settings(["Calculator"])["Calculator"].window_tokens == 50
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AnnotatorConfig(prefilter_options={"MT": {"min_foreign_tokens": 4}})  # no note
    with pytest.raises(UserError, match="disagree"):
        AnnotatorConfig(calc_min_numbers=2, prefilter_options={"Calculator": {"min_numbers": 4}})


# the annotator part of an augment run's config.json before prefilter_options existed
OLD_PREFILTER_FINGERPRINT = {
    "calc_window_tokens": 100,
    "calc_min_numbers": 3,
    "calc_random_keep": 0.01,
    "mt_min_foreign_tokens": 10,
}


def test_runs_recorded_with_the_old_fields_keep_their_fingerprint():
    new = AugmentConfig().fingerprint(1)
    assert "prefilter_options" not in new["annotator"]
    assert {k: new["annotator"][k] for k in OLD_PREFILTER_FINGERPRINT} == OLD_PREFILTER_FINGERPRINT
    # the same settings given either way are the same run
    with pytest.warns(DeprecationWarning):
        old_way = AnnotatorConfig(calc_window_tokens=60, calc_random_keep=0.01)
    new_way = AnnotatorConfig(prefilter_options={"calculator": {"window_tokens": 60}})
    assert old_way.fingerprint() == new_way.fingerprint()
    assert AugmentConfig(annotator=old_way).fingerprint(1) == AugmentConfig(
        annotator=new_way
    ).fingerprint(1)
    assert new_way.fingerprint()["calc_window_tokens"] == 60
    assert AnnotatorConfig().fingerprint()["calc_window_tokens"] == 100
    # a plugin prefilter's options are recorded too
    plugin = AnnotatorConfig(prefilter_options={"Shout": {"x": 1}}).fingerprint()
    assert plugin["prefilter_options"] == {"Shout": {"x": 1}}
