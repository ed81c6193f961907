"""The README's two commands, taken from the README itself (issue 20).

The demo command runs as a new user would run it: in a fresh copy of the repository, with only
the system directories on PATH (so `python3` is the distribution's, which refuses `pip install`
outside a virtual environment, PEP 668) and a fresh HOME that must stay empty. Only the test
servers' install cache is shared, so that Azurite is not downloaded again; the virtual
environments and every Python package are installed by the command itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests import servers

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
#: Left out of the copy: what the commands create, and what a developer's checkout accumulates.
NOT_COPIED = (
    ".git", ".nox", ".venv", "*.egg-info", "__pycache__", ".*_cache", "build", "dist", "storage", "bench-results",
)
#: Variables of the environment running this test (its nox session, pyenv) that would point the
#: child at this checkout or this interpreter instead of its own.
INHERITED_ONLY_HERE = (
    "VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONPATH", "PYTHONHOME", "PYENV_VERSION", "PIP_CACHE_DIR",
)


def readme_commands() -> dict[str, str]:
    """The commands of the README's first console block, by what they run: "demo" and "tests"."""
    block = re.search(r"^```console\n(.*?)^```", README.read_text(), re.M | re.S)
    assert block is not None, "README.md has no ```console block"
    lines = [line.strip() for line in block.group(1).splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    demo = [c for c in commands if c.endswith("-s demo")]
    tests = [c for c in commands if not c.endswith("-s demo")]
    assert len(demo) == 1 and len(tests) == 1, f"expected a demo and a test command, got {commands}"
    return {"demo": demo[0], "tests": tests[0]}


def test_ci_runs_the_readme_test_command_exactly() -> None:
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert ci_lines[-1] == readme_commands()["tests"]


def test_readme_commands_install_into_the_project_folder() -> None:
    # The bare system `python3` only ever creates the venv; pip and nox run from .venv/bin/python.
    for name, command in readme_commands().items():
        steps = [step.strip() for step in command.split("&&")]
        assert steps[0] == "python3 -m venv .venv", name
        assert all(step.startswith(".venv/bin/python -m ") for step in steps[1:]), name


def system_python() -> str:
    """The distribution's python3 (first in the system directories), checked for what the README
    asks of it; a failure names the package to install."""
    found = shutil.which("python3", path=os.pathsep.join(SYSTEM_PATH))
    if found is None:
        pytest.fail(f"no python3 in {':'.join(SYSTEM_PATH)}: install the distribution's python3 (3.11+)")
    probe = subprocess.run(
        [found, "-c", "import sys, venv, ensurepip; print(sys.version_info >= (3, 11), sys.version.split()[0])"],
        capture_output=True, text=True, timeout=60,
    )
    if probe.returncode != 0:
        pytest.fail(
            f"{found} lacks the venv/ensurepip modules the README's commands need "
            f"(Debian/Ubuntu: apt-get install python3-venv):\n{probe.stderr}"
        )
    new_enough, version = probe.stdout.split()
    if new_enough != "True":
        pytest.fail(f"{found} is Python {version}; the README's commands need 3.11+")
    return found


def fresh_copy(destination: Path) -> Path:
    shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(*NOT_COPIED))
    return destination


def run_in(project: Path, command: str, env: dict[str, str], timeout_s: float) -> tuple[str, float]:
    started = time.monotonic()
    done = subprocess.run(
        ["/bin/sh", "-c", command], cwd=project, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout_s,
    )
    assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n{done.stdout[-6000:]}"
    return done.stdout, time.monotonic() - started


@pytest.mark.servers
@pytest.mark.slow
def test_readme_demo_command_on_the_system_python(tmp_path: Path) -> None:
    python3 = system_python()
    command = readme_commands()["demo"]
    project = fresh_copy(tmp_path / "unistore")
    home = tmp_path / "home"
    home.mkdir()
    path = list(SYSTEM_PATH)
    node = shutil.which("node")  # the README's other requirement, wherever it is installed
    if node is not None and os.path.dirname(node) not in path:
        path.append(os.path.dirname(node))
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_ONLY_HERE}
    env |= {"PATH": os.pathsep.join(path), "HOME": str(home), "UNISTORE_SERVERS_CACHE": str(servers._cache_dir())}

    output, first_s = run_in(project, command, env, timeout_s=900)
    assert "Successfully uploaded recording to AWS S3" in output, output
    assert "Successfully uploaded recording to Azure Blob Storage" in output, output
    # The venv is the distribution's Python's, not the interpreter running this test.
    pyvenv = (project / ".venv" / "pyvenv.cfg").read_text()
    assert re.search(rf"^home = {re.escape(os.path.dirname(python3))}$", pyvenv, re.M), pyvenv
    assert (project / ".nox" / "demo").is_dir()

    output, second_s = run_in(project, command, env, timeout_s=600)
    assert "Reusing existing virtual environment at .nox/demo" in output, output
    assert "Successfully uploaded recording to Azure Blob Storage" in output, output
    assert second_s < first_s, (first_s, second_s)

    written = sorted(str(p.relative_to(home)) for p in home.rglob("*") if len(p.relative_to(home).parts) <= 3)
    assert written == [], f"the demo wrote outside the project folder, into HOME: {written}"
