"""Running `python -m unistore` in a real subprocess, configured by its environment alone (no
STORAGE_/AWS_/AZURE_ variable of the outer environment leaks in), for the CLI tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUICK_FAILURE = {"STORAGE_RETRY_ATTEMPTS": "2", "STORAGE_RETRY_DEADLINE": "3", "STORAGE_CONNECT_TIMEOUT": "1"}
"""A provider that is down fails within seconds instead of the production retry deadline."""
SMALL_PARTS = {"STORAGE_MULTIPART_THRESHOLD": "5MiB", "STORAGE_CHUNK_SIZE": "5MiB"}


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_"))}
    return {**keep, **env}


def unistore_argv(*args: str) -> list[str]:
    return [sys.executable, "-W", "always::ResourceWarning", "-m", "unistore", *args]


def run_cli(
    *args: str, env: Mapping[str, str], cwd: Path = REPO, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        unistore_argv(*args),
        env=child_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_cli_bytes(*args: str, env: Mapping[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        unistore_argv(*args), env=child_env(env), cwd=cwd, capture_output=True, timeout=120, check=False
    )


def dead_endpoint() -> str:
    """A loopback URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
