"""A throwaway S3-compatible object store: OpenStack Swift with its ``s3api`` middleware, on loopback.

:class:`SwiftS3` runs a Swift all-in-one from Debian's packages (Swift 2.30 on bookworm:
``apt-get install swift swift-proxy swift-account swift-container swift-object``) as four separate
server processes — proxy, account, container and object server — with every file under one
folder: configuration, rings, the storage device and the logs. Nothing is written to
``/etc/swift`` and nothing there is used (importing ``swift.common.utils`` still reads
``/etc/swift/swift.conf`` when it exists; the launcher replaces what it read, see below).

    with SwiftS3() as s3:
        fs = s3.pyarrow_filesystem(allow_bucket_creation=True)  # S3FileSystem(**s3.pyarrow_options())

How it is put together:

- **Ports**: four free TCP ports on 127.0.0.1 (proxy, account, container, object), chosen when
  the servers start; the rings name the backend ports. A port taken in between makes that server
  fail to bind, and the whole start is retried on new ports.
- **Launch**: every server runs under Debian's ``/usr/bin/python3`` (the interpreter the
  ``python3-swift`` package is installed for) through a small launcher written into the folder.
  It does what ``/usr/bin/swift-<server>-server`` does — ``swift.common.wsgi.run_wsgi(conf,
  '<server>-server')`` — after pointing Swift at this folder's ``swift.conf``: Swift 2.30 reads
  ``swift.conf`` from ``swift.common.utils.SWIFT_CONF_FILE``, a module constant fixed to
  ``/etc/swift/swift.conf``; ``swift.common.utils.set_swift_dir()`` (the hook ``swift-recon``
  uses) re-points it and re-reads the hash path prefix/suffix, and the launcher then reloads
  the constraints and storage policies (``constraints.reload_constraints()``,
  ``storage_policy.reload_storage_policies()``) before any server module is imported. Servers
  run in the foreground (``workers = 0``: one process each, no forks, no privilege dropping),
  each in a process group of its own, and die with the thread that started them
  (``PR_SET_PDEATHSIG``): call :meth:`SwiftS3.start` from a thread that outlives the servers
  (normally the main thread).
- **Logs**: Swift logs to syslog (``/dev/log``, else UDP to localhost:514). The launcher turns
  the syslog handler off and has Swift log to the console instead, which is the server's log
  file ``<folder>/log/<server>.log``; start-up failures quote the tail of every log.
- **Proxy pipeline**: ``catch_errors gatekeeper healthcheck proxy-logging cache listing_formats
  bulk s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server`` (the order the
  proxy and s3api check: s3api before the auth filter; slo after s3api, which multipart upload
  needs). ``tempauth`` needs a cache object in the request (it raises "Memcache required"
  without one), so the ``cache`` filter is there, but no memcached runs: it points at port 0 of
  127.0.0.1, which refuses at once, and stays error-limited for the rest of the run. Swift then
  works without a cache (every request reads account and container info from the backends).
  Its complaints are silenced (``log_level = CRITICAL`` for that filter only).
- **Credentials**: tempauth user ``test:tester`` (an account admin, so it may create buckets)
  with a random password per run. For the S3 API the access key is ``<account>:<user>`` and the
  secret key is the tempauth password; the region is ``us-east-1`` (s3api's ``location``, which
  SigV4 signatures must name). Swift itself checks the signature: :meth:`SwiftS3.start` makes
  sure a wrong secret key is refused.
- **Storage**: one ring per kind (part power 6, 1 replica, one device ``d1``), built with Swift's
  own ring builder (``swift.cli.ringbuilder``, the code ``swift-ring-builder`` runs, all nine
  commands in one process). The object server keeps metadata in user extended attributes, so
  the device folder must be on a file system that takes them (ext4, XFS, tmpfs ≥ 6.6, btrfs):
  the folder is checked first, then ``/var/tmp``, ``/dev/shm`` and ``tempfile.gettempdir()``.

Every failure raises :class:`SwiftS3Error` (:class:`SwiftNotInstalledError` when a package is
missing, :class:`NoXattrError` when no folder takes extended attributes). :meth:`SwiftS3.stop`
is idempotent (context manager, and ``atexit`` as a last resort); it stops every server's process
group and removes only what the harness itself created (a folder given to it is left as it is).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tests.integration import logs

if TYPE_CHECKING:
    import pyarrow.fs

#: The interpreter Debian's python3-swift is installed for.
SYSTEM_PYTHON = Path("/usr/bin/python3")
#: Debian's Swift commands, each with the package that ships it.
SWIFT_COMMANDS = {
    "/usr/bin/swift-ring-builder": "swift",
    "/usr/bin/swift-proxy-server": "swift-proxy",
    "/usr/bin/swift-account-server": "swift-account",
    "/usr/bin/swift-container-server": "swift-container",
    "/usr/bin/swift-object-server": "swift-object",
}
PACKAGES = "swift swift-proxy swift-account swift-container swift-object"
INSTALL_HINT = f"apt-get install {PACKAGES}"
#: The storage servers, started before the proxy.
BACKENDS = ("account", "container", "object")
REGION = "us-east-1"
ACCOUNT = "test"
USER = "tester"
#: Lines of each log shown in a failure message.
TAIL_LINES = 30
#: Ring geometry: 2**6 partitions, one replica, partitions may move at once.
PART_POWER, REPLICAS, MIN_PART_HOURS = 6, 1, 0
#: Attempts at starting when a chosen port was taken in between.
PORT_ATTEMPTS = 3
#: Environment pyarrow's AWS SDK must see when an ``S3FileSystem`` is constructed: its default
#: request checksums ("when supported") send uploads as ``aws-chunked`` bodies with a trailing
#: CRC64NVME, which Swift 2.30's s3api refuses (501 NotImplemented). The SDK reads this per client.
CLIENT_ENV = {"AWS_REQUEST_CHECKSUM_CALCULATION": "WHEN_REQUIRED"}

# Run by SYSTEM_PYTHON (not the test's interpreter): `launcher.py ring SWIFT_DIR` builds the rings
# from SWIFT_DIR/rings.txt; `launcher.py serve SWIFT_DIR CONF SERVER PARENT_PID` runs one server.
LAUNCHER = r'''"""Written by tests/integration/s3server.py: runs Swift with its configuration in SWIFT_DIR, not /etc/swift."""
import ctypes
import logging
import os
import signal
import sys


def point_swift_at(swift_dir):
    """Make Swift read SWIFT_DIR/swift.conf instead of /etc/swift/swift.conf."""
    from swift.common import utils

    utils.set_swift_dir(swift_dir)  # sets utils.SWIFT_CONF_FILE, re-reads the hash path prefix/suffix
    from swift.common import constraints, storage_policy

    constraints.reload_constraints()
    storage_policy.reload_storage_policies()
    expected = os.path.join(swift_dir, "swift.conf")
    if utils.SWIFT_CONF_FILE != expected or not constraints.SWIFT_CONSTRAINTS_LOADED:
        sys.exit("could not point Swift at %s (it reads %s)" % (expected, utils.SWIFT_CONF_FILE))


def build_rings(swift_dir):
    from swift.cli import ringbuilder

    os.chdir(swift_dir)
    with open("rings.txt") as commands:
        for line in commands:
            argv = ["swift-ring-builder", *line.split()]
            try:
                ringbuilder.main(argv)
                status = 0
            except SystemExit as exc:
                status = exc.code or 0
            if status not in (0, 1):  # 1 = done, with warnings
                sys.exit("%s failed with status %s" % (" ".join(argv), status))


def serve(swift_dir, conf_path, server, parent_pid):
    # Die with the process that started us, even if it never gets to stop us.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        sys.exit("the starting process is gone")
    point_swift_at(swift_dir)
    from swift.common import utils

    class NoSyslog(logging.NullHandler):
        """Stands in for Swift's syslog handler: the console (this server's log file) is the log."""

        def __init__(self, *args, **kwargs):
            super().__init__()

    utils.ThreadSafeSysLogHandler = NoSyslog
    from swift.common.wsgi import run_wsgi

    # What /usr/bin/swift-<server>-server does, with -v (log to the console).
    sys.exit(run_wsgi(conf_path, server + "-server", verbose=True))


if __name__ == "__main__":
    if sys.argv[1] == "ring":
        build_rings(sys.argv[2])
    else:
        serve(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
'''


class SwiftS3Error(RuntimeError):
    """The Swift all-in-one could not be set up or started, or a server died."""


class SwiftNotInstalledError(SwiftS3Error):
    """A Debian package the harness needs is not installed."""


class NoXattrError(SwiftS3Error):
    """No candidate folder is on a file system with user extended attributes."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that nothing listens on right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    return logs.tail(path, lines)


@functools.cache
def check_installed() -> None:
    """Raise :class:`SwiftNotInstalledError` naming the missing Debian package(s), if any (checked once)."""
    missing = [
        f"{command} (package {package})" for command, package in SWIFT_COMMANDS.items() if not Path(command).exists()
    ]
    if not SYSTEM_PYTHON.exists():
        missing.append(f"{SYSTEM_PYTHON} (package python3)")
    if missing:
        raise SwiftNotInstalledError(
            f"OpenStack Swift is not installed: missing {', '.join(missing)}; install it with `{INSTALL_HINT}`"
        )
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-I", "-c", "import swift.common.wsgi, swift.common.middleware.s3api.s3api, xattr"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise SwiftNotInstalledError(
            f"{SYSTEM_PYTHON} cannot import Swift (package python3-swift, pulled in by `{INSTALL_HINT}`):\n"
            + probe.stderr.strip()[-2000:]
        )


def xattr_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot hold Swift objects (no user extended attributes), or None when it can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".xattr-probe-", dir=folder)
    except OSError as exc:
        return f"not writable ({exc.strerror})"
    try:
        # Swift stores pickled metadata in user.swift.metadata (a few hundred bytes per object).
        os.setxattr(fd, "user.swift.metadata", b"x" * 1024)
        if os.getxattr(fd, "user.swift.metadata") != b"x" * 1024:
            return "extended attribute read back differently"
    except OSError as exc:
        return f"no user extended attributes ({exc.strerror})"
    finally:
        os.close(fd)
        Path(name).unlink()
    return None


@dataclass
class _Server:
    name: str
    port: int
    conf: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None


class SwiftS3:
    """Swift with the S3 API on 127.0.0.1, in a folder of its own (see the module docstring).

    ``base_dir``: the folder for configuration, rings, logs and (when its file system takes
    extended attributes) the storage device. When None, :meth:`start` makes a new folder in the
    temporary directory and :meth:`stop` removes it, unless ``keep`` or the start failed after
    the servers wrote logs (the error message names the folder). A folder passed in is never
    removed. An instance starts once.
    """

    def __init__(self, base_dir: Path | str | None = None, *, keep: bool = False, start_timeout: float = 60.0) -> None:
        self._own_base = base_dir is None
        self.base = (
            Path(tempfile.gettempdir()) / f"govdata-swift-s3-{os.getpid()}-{secrets.token_hex(4)}"
            if base_dir is None
            else Path(base_dir)
        )
        self.keep = keep
        self.start_timeout = start_timeout
        self.etc = self.base / "etc"
        self.logs = self.base / "log"
        self.devices: Path = self.base / "srv"
        self._own_devices: Path | None = None
        self.access_key = f"{ACCOUNT}:{USER}"
        self.secret_key = secrets.token_hex(16)
        self.region = REGION
        self.servers: list[_Server] = []
        self.port = 0
        self.startup_seconds: float | None = None
        self._started = False
        self._stopped = False
        self._failed = False

    # --- life cycle -------------------------------------------------------------------------

    def __enter__(self) -> SwiftS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The S3 (and Swift) endpoint, ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Write the configuration, build the rings, start the servers and wait until S3 requests work."""
        if self._started:
            return
        if self._stopped:
            raise SwiftS3Error("this SwiftS3 was stopped; start a new one")
        began = time.monotonic()
        check_installed()
        atexit.register(self.stop)
        self._started = True
        try:
            self.base.mkdir(parents=True, exist_ok=not self._own_base)
            self.devices = self._device_root()
            for folder in (self.etc, self.logs, self.devices / "d1", self.base / "cache"):
                folder.mkdir(parents=True, exist_ok=True)
            (self.etc / "launcher.py").write_text(LAUNCHER)
            self._write_swift_conf()
            for attempt in range(1, PORT_ATTEMPTS + 1):
                ports = free_ports(1 + len(BACKENDS))
                self.port = ports[0]
                backend_ports = dict(zip(BACKENDS, ports[1:], strict=True))
                self._write_server_confs(backend_ports)
                self._build_rings(backend_ports)
                self._start_servers()
                try:
                    self._wait_ready(began + self.start_timeout)
                    break
                except SwiftS3Error:
                    if attempt < PORT_ATTEMPTS and self._bind_failed():
                        self._stop_servers()
                        continue
                    raise
        except BaseException:
            self._failed = True
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self, grace: float = 10.0) -> None:
        """Stop every server; remove what the harness created, unless kept or holding logs of a failed start (idempotent)."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        self._stop_servers(grace)
        if self.keep or (self._failed and any(self.logs.glob("*.log"))):
            return
        if self._own_devices is not None:
            shutil.rmtree(self._own_devices, ignore_errors=True)
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    # --- clients ----------------------------------------------------------------------------

    def pyarrow_options(self) -> dict[str, Any]:
        """Keyword arguments for ``pyarrow.fs.S3FileSystem`` for this server (construct it with :data:`CLIENT_ENV` set)."""
        return {
            "access_key": self.access_key,
            "secret_key": self.secret_key,
            "region": self.region,
            "scheme": "http",
            "endpoint_override": self.endpoint,
            # Path-style addressing (bucket in the path): the default whenever endpoint_override is set.
            "force_virtual_addressing": False,
        }

    def pyarrow_filesystem(self, **overrides: Any) -> pyarrow.fs.S3FileSystem:
        """A ``pyarrow.fs.S3FileSystem`` for this server, constructed with :data:`CLIENT_ENV` set.

        ``overrides`` are further (or replacing) keyword arguments, e.g. ``allow_bucket_creation=True``.
        The caller's environment is restored afterwards; the filesystem keeps the setting.
        """
        import pyarrow.fs  # here, so that importing the harness needs no pyarrow

        saved = {name: os.environ.get(name) for name in CLIENT_ENV}
        os.environ.update(CLIENT_ENV)
        try:
            return pyarrow.fs.S3FileSystem(**{**self.pyarrow_options(), **overrides})
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def request(
        self,
        method: str,
        path: str = "/",
        query: Mapping[str, str] | None = None,
        *,
        secret_key: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """An S3 request without a body, signed with SigV4: (status, headers with lower-case names, body)."""
        return s3_request(
            self.endpoint,
            method,
            path,
            query,
            access_key=self.access_key,
            secret_key=self.secret_key if secret_key is None else secret_key,
            region=self.region,
            timeout=timeout,
        )

    def diagnostics(self, lines: int = TAIL_LINES) -> str:
        """The tail of every server's log."""
        parts = [f"(folder {self.base})"]
        for server in self.servers:
            status = logs.process_status(server.process)
            parts.append(
                f"----- {server.name}-server on port {server.port} ({status}): last {lines} lines of {server.log_path} -----\n"
                f"{tail(server.log_path, lines)}"
            )
        return "\n".join(parts)

    # --- set-up -----------------------------------------------------------------------------

    def _device_root(self) -> Path:
        """A folder for the storage device on a file system with user extended attributes."""
        problems = []
        problem = xattr_problem(self.base / "srv")
        if problem is None:
            return self.base / "srv"
        problems.append(f"{self.base / 'srv'}: {problem}")
        seen = {self.base.resolve()}
        for candidate in (Path("/var/tmp"), Path("/dev/shm"), Path(tempfile.gettempdir())):
            if not candidate.is_dir() or candidate.resolve() in seen:
                continue
            seen.add(candidate.resolve())
            problem = xattr_problem(candidate)
            if problem is None:
                self._own_devices = Path(tempfile.mkdtemp(prefix="govdata-swift-devices-", dir=candidate))
                return self._own_devices
            problems.append(f"{candidate}: {problem}")
        raise NoXattrError(
            "Swift's object server needs a file system with user extended attributes "
            "(ext4, XFS, btrfs, tmpfs on Linux 6.6+); none of these folders has one:\n  " + "\n  ".join(problems)
        )

    def _write_swift_conf(self) -> None:
        (self.etc / "swift.conf").write_text(
            "[swift-hash]\n"
            f"swift_hash_path_suffix = {secrets.token_hex(8)}\n"
            f"swift_hash_path_prefix = {secrets.token_hex(8)}\n"
            "\n[storage-policy:0]\nname = Policy-0\ndefault = yes\n"
            "\n[swift-constraints]\n"
        )

    def _common_conf(self, port: int, server: str) -> str:
        return (
            "[DEFAULT]\n"
            f"swift_dir = {self.etc}\n"
            f"devices = {self.devices}\n"
            "mount_check = false\n"
            "disable_fallocate = true\n"
            "bind_ip = 127.0.0.1\n"
            f"bind_port = {port}\n"
            "bind_timeout = 5\n"
            "workers = 0\n"
            f"log_name = {server}-server\n"
            "log_level = INFO\n"
            f"recon_cache_path = {self.base / 'cache'}\n"
        )

    def _write_server_confs(self, backend_ports: Mapping[str, int]) -> None:
        self.servers = []
        for name, port in backend_ports.items():
            conf = self.etc / f"{name}-server.conf"
            conf.write_text(
                self._common_conf(port, name)
                + f"\n[pipeline:main]\npipeline = healthcheck {name}-server\n"
                + f"\n[app:{name}-server]\nuse = egg:swift#{name}\n"
                + "\n[filter:healthcheck]\nuse = egg:swift#healthcheck\n"
            )
            self.servers.append(_Server(name, port, conf, self.logs / f"{name}-server.log"))
        proxy_conf = self.etc / "proxy-server.conf"
        pipeline = (
            "catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk "
            "s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server"
        )
        filters = {
            "catch_errors": "catch_errors",
            "gatekeeper": "gatekeeper",
            "healthcheck": "healthcheck",
            "proxy-logging": "proxy_logging",
            "listing_formats": "listing_formats",
            "bulk": "bulk",
            "copy": "copy",
            "slo": "slo",
            "dlo": "dlo",
            "versioned_writes": "versioned_writes",
        }
        text = self._common_conf(self.port, "proxy") + f"\n[pipeline:main]\npipeline = {pipeline}\n"
        text += "\n[app:proxy-server]\nuse = egg:swift#proxy\naccount_autocreate = true\n"
        for section, entry_point in filters.items():
            text += f"\n[filter:{section}]\nuse = egg:swift#{entry_point}\n"
        text += (
            "\n[filter:cache]\nuse = egg:swift#memcache\n"
            "# No memcached: port 0 refuses at once, and the server stays error-limited for a day.\n"
            "memcache_servers = 127.0.0.1:0\n"
            "error_suppression_limit = 0\n"
            "error_suppression_interval = 86400\n"
            "set log_level = CRITICAL\n"
            "\n[filter:s3api]\nuse = egg:swift#s3api\n"
            f"location = {self.region}\n"
            "\n[filter:tempauth]\nuse = egg:swift#tempauth\n"
            f"user_{ACCOUNT}_{USER} = {self.secret_key} .admin\n"
        )
        proxy_conf.write_text(text)
        self.servers.append(_Server("proxy", self.port, proxy_conf, self.logs / "proxy-server.log"))

    def _build_rings(self, backend_ports: Mapping[str, int]) -> None:
        lines = []
        for name, port in backend_ports.items():
            builder = f"{name}.builder"
            for stale in (self.etc / builder, self.etc / f"{name}.ring.gz"):
                stale.unlink(missing_ok=True)
            lines += [
                f"{builder} create {PART_POWER} {REPLICAS} {MIN_PART_HOURS}",
                f"{builder} add r1z1-127.0.0.1:{port}/d1 1",
                f"{builder} rebalance",
            ]
        (self.etc / "rings.txt").write_text("\n".join(lines) + "\n")
        log = self.logs / "rings.log"
        with log.open("wb") as out:
            done = subprocess.run(
                [str(SYSTEM_PYTHON), "-I", str(self.etc / "launcher.py"), "ring", str(self.etc)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self._environment(),
                timeout=60,
                check=False,
            )
        if done.returncode != 0:
            raise SwiftS3Error(f"building the rings failed (exit {done.returncode}):\n{tail(log)}")

    def _environment(self) -> dict[str, str]:
        # From scratch: nothing of the caller's virtualenv or Python settings reaches Debian's Python.
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": str(self.base), "TZ": "UTC"}

    def _start_servers(self) -> None:
        env = self._environment()
        for server in self.servers:
            server.log_file = server.log_path.open("wb")
            server.process = subprocess.Popen(
                [
                    str(SYSTEM_PYTHON),
                    "-I",
                    str(self.etc / "launcher.py"),
                    "serve",
                    str(self.etc),
                    str(server.conf),
                    server.name,
                    str(os.getpid()),
                ],
                env=env,
                cwd=self.base,
                stdin=subprocess.DEVNULL,
                stdout=server.log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as one
            )

    def _stop_servers(self, grace: float = 10.0) -> None:
        for server in self.servers:
            if server.process is not None and server.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(server.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for server in self.servers:
            if server.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.process.wait(timeout=max(0.1, deadline - time.monotonic()))
                if server.process.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(server.process.pid, signal.SIGKILL)
                    server.process.wait(timeout=10)
            if server.log_file is not None:
                server.log_file.close()
                server.log_file = None

    # --- readiness --------------------------------------------------------------------------

    def _check_alive(self) -> None:
        for server in self.servers:
            if server.process is not None and server.process.poll() is not None:
                raise SwiftS3Error(
                    f"the {server.name} server exited with status {server.process.returncode} while starting\n"
                    f"{self.diagnostics()}"
                )

    def _bind_failed(self) -> bool:
        return any("Could not bind" in tail(server.log_path) for server in self.servers)

    def _wait_ready(self, deadline: float) -> None:
        waiting_for = "the servers"
        last_error = ""
        while time.monotonic() < deadline:
            self._check_alive()
            down = [s.name for s in self.servers if not _healthy(s.port)]
            if down:
                waiting_for = "healthcheck of " + ", ".join(f"{name}-server" for name in down)
            else:
                waiting_for = "a signed S3 ListBuckets"
                try:
                    status, _headers, body = self.request("GET", "/", timeout=5)
                except OSError as exc:
                    last_error = str(exc)
                else:
                    if status == 200:
                        self._check_auth_enforced()
                        return
                    last_error = f"HTTP {status}: {body[:500].decode('utf-8', errors='replace')}"
            time.sleep(0.2)
        detail = f" (last answer: {last_error})" if last_error else ""
        raise SwiftS3Error(
            f"Swift's S3 API was not ready after {self.start_timeout:.0f} s, waiting for {waiting_for}{detail}\n"
            f"{self.diagnostics()}"
        )

    def _check_auth_enforced(self) -> None:
        status, _headers, _body = self.request("GET", "/", secret_key=self.secret_key + "-wrong", timeout=5)
        if status != 403:
            raise SwiftS3Error(
                f"Swift's S3 API accepted a wrong secret key (HTTP {status}): is tempauth in the proxy pipeline?\n"
                f"{self.diagnostics()}"
            )


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def s3_request(
    endpoint: str,
    method: str,
    path: str = "/",
    query: Mapping[str, str] | None = None,
    *,
    access_key: str,
    secret_key: str,
    region: str,
    timeout: float = 10.0,
) -> tuple[int, dict[str, str], bytes]:
    """An S3 request without a body, signed with AWS Signature Version 4 (stdlib only).

    ``path`` is ``/``, ``/bucket`` or ``/bucket/key`` (path-style, not yet percent-encoded).
    Returns the status, the response headers (names lower-cased) and the body; HTTP errors are
    returned, not raised.
    """
    url = urllib.parse.urlsplit(endpoint)
    host = url.netloc
    canonical_path = urllib.parse.quote(path, safe="/-_.~")
    pairs = sorted(
        (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~")) for k, v in (query or {}).items()
    )
    canonical_query = "&".join(f"{k}={v}" for k, v in pairs)
    now = dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = hashlib.sha256(b"").hexdigest()
    signed_headers = "host;x-amz-content-sha256;x-amz-date"
    canonical_headers = f"host:{host}\nx-amz-content-sha256:{payload_hash}\nx-amz-date:{amz_date}\n"
    canonical_request = "\n".join(
        [method, canonical_path, canonical_query, canonical_headers, signed_headers, payload_hash]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(f"AWS4{secret_key}".encode(), day)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"{url.scheme}://{host}{canonical_path}" + (f"?{canonical_query}" if canonical_query else ""),
        method=method,
        headers={
            "Host": host,
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload_hash,
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                f"SignedHeaders={signed_headers}, Signature={signature}"
            ),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
