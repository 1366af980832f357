"""What a newcomer meets from a fresh clone: `./dev`, `novalite serve`'s options, the
root URL, the openrc file, `nova help`, and one service per state directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
NOVA = str(Path(sys.executable).parent / "nova")
CLIENTS = REPO / ".venv-clients" / "bin"
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-query") is None,
                                reason="./dev checks Debian packages with dpkg-query")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NOVALITE_", "OS_"))}
    env.update(extra)
    return env


def run(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env if env is not None else clean_env(), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# -- ./dev ---------------------------------------------------------------------------


@needs_dpkg
def test_dev_serve_a_second_time_installs_nothing_and_prints_nothing() -> None:
    first = run([str(REPO / "dev"), "serve", "--help"], timeout=600)
    assert first.returncode == 0, first.stderr
    assert "Warning" not in first.stderr and "deprecated" not in first.stderr, first.stderr
    again = run([str(REPO / "dev"), "serve", "--help"])
    assert again.returncode == 0, again.stderr
    assert again.stderr == ""  # no "installing", no pip, no setuptools
    assert "--port" in again.stdout and "--state-path" in again.stdout


def test_building_novalite_prints_no_setuptools_warnings(tmp_path: Path) -> None:
    """The licence is declared as setuptools wants it (an SPDX expression): building the
    package, as `./dev`'s first run does, warns about nothing."""
    tree = tmp_path / "novalite-src"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "novalite", tree / "novalite", ignore=ignore)
    shutil.copytree(REPO / "drivers", tree / "drivers", ignore=ignore)
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                 str(tmp_path / "dist"), str(tree)], timeout=600)
    assert built.returncode == 0, built.stderr
    assert list((tmp_path / "dist").glob("novalite-*.whl"))
    assert "Warning" not in built.stdout + built.stderr, built.stdout + built.stderr
    assert "license" not in (built.stdout + built.stderr).lower()


@needs_dpkg
@pytest.mark.clients
def test_dev_clients_installs_the_real_clients_on_their_own(tmp_path: Path) -> None:
    shutil.copy(REPO / "dev", tmp_path / "dev")  # a checkout of its own: a venv of its own
    first = run([str(tmp_path / "dev"), "clients"], timeout=900)
    assert first.returncode == 0, first.stderr
    assert "installing into .venv-clients" in first.stderr
    for command in ("openstack", "nova"):
        assert (tmp_path / ".venv-clients" / "bin" / command).exists()
    assert not (tmp_path / ".venv").exists()  # the clients only
    again = run([str(tmp_path / "dev"), "clients"])
    assert again.returncode == 0, again.stderr
    assert "installing" not in again.stderr and "pip" not in again.stderr


def test_dev_without_a_command_names_all_three() -> None:
    out = run([str(REPO / "dev")])
    assert out.returncode == 2
    for command in ("./dev serve", "./dev test", "./dev clients"):
        assert command in out.stderr
