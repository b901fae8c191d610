"""The built wheel carries every data file the package reads."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _package_data_files() -> set:
    """Every file under toolformer/ that is not Python source or a folder's README for
    developers: prompts, accelerate configs..."""
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "toolformer").rglob("*")
        if p.is_file()
        and p.suffix not in (".py", ".pyc")
        and "__pycache__" not in p.parts
        and not p.name.startswith("README")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a copy: an in-place build would leave build/ and *.egg-info in the checkout
    src = tmp_path_factory.mktemp("src")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "toolformer", src / "toolformer", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("toolformer-*.whl")
    return path


def test_wheel_holds_every_package_data_file(wheel):
    data = _package_data_files()
    assert "toolformer/configs/accelerate/ddp.yaml" in data  # the set is not empty by accident
    assert "toolformer/tools/prompts/calculator.txt" in data
    names = set(zipfile.ZipFile(wheel).namelist())
    assert sorted(data - names) == []


def test_accelerate_config_and_prompts_load_from_the_installed_wheel(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import toolformer, sys\n"
        f"assert toolformer.__file__.startswith({str(site)!r}), toolformer.__file__\n"
        "from toolformer.finetune import accelerate_config\n"
        "for name in ('ddp', 'fsdp', 'deepspeed_zero3', 'cpu_2proc'):\n"
        "    assert accelerate_config(name).read_text().strip()\n"
        "from toolformer.tools.base import load_prompt\n"
        "for name in ('calculator', 'calendar', 'mt', 'qa', 'wiki_search'):\n"
        "    assert load_prompt(name + '.txt').strip()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
