"""A real S3 HTTP endpoint for tests: ``moto_server`` in a subprocess.

Usable by any test module (publication, verification, end-to-end)::

    with MotoServer() as server:
        client = server.client()

``MotoServer(data_dir=...)`` runs the local stack's persistent server instead
(``ioarchive.devtools.s3server``: the same moto, state written through to that folder).

The server gets a free port, is waited for until it answers HTTP, runs in its own process
group, and the whole group is terminated on exit (moto_server may fork helpers).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """``moto_server -H 127.0.0.1 -p <free port>`` for the duration of a ``with`` block."""

    def __init__(self, startup_timeout: float = 30.0, data_dir: Path | None = None, port: int = 0) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # moto logs every request: a pipe would fill and block it

    def __enter__(self) -> MotoServer:
        if self.data_dir is None:
            argv = [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(self.port)]
        else:
            argv = [sys.executable, "-m", "ioarchive.devtools.s3server", "--data", str(self.data_dir),
                    "-H", "127.0.0.1", "-p", str(self.port)]
        env = {**os.environ, **{k.upper(): v for k, v in CREDENTIALS.items() if k != "region_name"}}
        self.process = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env=env,
            start_new_session=True,  # own process group: teardown kills everything it started
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.process.poll() is not None:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace")
                raise RuntimeError(f"moto_server exited with {self.process.returncode}: {err[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint_url} within "
                                       f"{self.startup_timeout} s") from None
                time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            self._log.close()
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        finally:
            self._log.close()

    def kill(self) -> None:
        """SIGKILL the server's process group, as a crash or an OOM kill would."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self._log.close()

    def client(self) -> Any:
        """A boto3 S3 client for this server (static test credentials)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, **CREDENTIALS)

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset API), for test isolation."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=5):
            pass
