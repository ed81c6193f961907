"""A provider's first use keeps its heavy set-up off the event loop thread (issue #22).

From a fresh process, importing aioboto3 and azure-storage-blob, reading botocore's JSON models
and loading the CA bundle into an SSL context took one loop step of 330-515 ms of loop-thread
CPU on the bench machine. This checks where each of those happens, not how long it takes: in a
fresh interpreter, against the real servers, an import hook and two wrappers record the thread
that first imports each SDK, parses a large JSON document and loads CA certificates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import servers
from tests.conftest import unique_name

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, json, ssl, sys, threading

import unistore

WATCH = ("aioboto3", "aiobotocore", "botocore", "boto3", "s3transfer", "azure.core", "azure.storage.blob")
where = {}


def looked_up_only():
    # `importlib.util.find_spec` (whether an SDK is installed) asks the finders too, importing nothing
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "find_spec" and code.co_filename.endswith(("importlib/util.py", "importlib.util>")):
            return True
        frame = frame.f_back
    return False


class FirstImport:
    def find_spec(self, name, path=None, target=None):
        if name in WATCH and name not in where and not looked_up_only():
            where[name] = threading.get_ident()
        return None


sys.meta_path.insert(0, FirstImport())
_loads = json.loads


def loads(text, *args, **kwargs):
    if len(text) > 100_000:  # botocore's service model and endpoint rules
        where.setdefault("large json", threading.get_ident())
    return _loads(text, *args, **kwargs)


json.loads = loads
_load_verify = ssl.SSLContext.load_verify_locations


def load_verify(self, *args, **kwargs):
    where.setdefault("ssl load_verify_locations", threading.get_ident())
    return _load_verify(self, *args, **kwargs)


ssl.SSLContext.load_verify_locations = load_verify


async def main():
    storage = unistore.Storage.from_env()
    constructed = sorted(name for name in WATCH if name in sys.modules)
    async with storage:
        for provider in storage.providers.values():
            await provider.exists("stall/probe")
    print(json.dumps({"loop": threading.get_ident(), "where": where, "after_construction": constructed}))


asyncio.run(main())
"""


def test_first_use_imports_and_loads_off_the_loop_thread(
    s3_server: servers.S3Server, azurite: servers.AzuriteServer
) -> None:
    bucket, container = unique_name("stall"), unique_name("stall")
    s3_server.create_bucket(bucket)
    azurite.create_container(container)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STORAGE_", "AWS_", "AZURE_"))}
    env.update(s3_server.env(bucket), STORAGE_UPLOAD_MODE="both")
    env.update(azurite.env(container))
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["after_construction"] == [], "building the providers imported an SDK"
    where: dict[str, int] = seen["where"]
    for what in ("aioboto3", "aiobotocore", "botocore", "boto3", "azure.storage.blob", "large json",
                 "ssl load_verify_locations"):
        assert what in where, f"{what}: never seen (the probe no longer sees what it checks)"
    on_loop = sorted(what for what, thread in where.items() if thread == seen["loop"])
    assert on_loop == [], f"done on the event loop thread: {on_loop}"
