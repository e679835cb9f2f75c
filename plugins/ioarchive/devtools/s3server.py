"""The local stack's S3 server: moto over HTTP, with every change written through to a folder.

``moto_server`` keeps buckets in memory, so a restarted local stack forgot every release it had
published (issue #19 item 5). This process serves the same moto S3 implementation (the one the
tests and publish/store.py are written against: multipart, CopyObject, ListObjectsV2, bucket
policy, public-access block, default encryption) and persists its state under ``--data``:

- on start, every bucket and object found there is put back into moto's backend (same keys,
  bytes, ETags, checksums, metadata, last-modified times, bucket settings);
- after every request that can change state (PUT, POST, DELETE) and before the client gets its
  answer, what changed is written to disk, each file atomically (temporary file + rename), so a
  ``kill -9`` at any moment leaves each object either as it was or as acknowledged.

Layout: ``FORMAT`` (moto version of the pickles), ``<bucket>/bucket.pickle`` (the bucket without
its objects), ``<bucket>/objects/<sha256 of key>.pickle`` (every version moto holds of one key).
Not kept: uploads in progress (a client restarts them), object tags, and the parts of completed
multipart objects (the object, its ETag and its checksums are kept; ``GetObject`` by
``PartNumber`` of a restored object is not supported). The pickles are moto's own objects, so a
data folder is tied to the moto version that wrote it; another version refuses to start and
says how to wipe the folder.

``python -m ioarchive.devtools.s3server --data DIR [-H 127.0.0.1] [-p PORT]``
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import logging
import os
import pickle
import shutil
import signal
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("ioarchive.s3server")

FORMAT_FILE = "FORMAT"
BUCKET_FILE = "bucket.pickle"
OBJECTS_DIR = "objects"


def _moto_version() -> str:
    from importlib.metadata import version

    return version("moto")


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` in one rename: a killed server leaves the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _key_file(bucket_dir: Path, key: str) -> Path:
    return bucket_dir / OBJECTS_DIR / (hashlib.sha256(key.encode()).hexdigest() + ".pickle")


def _lean(version: Any) -> Any:
    """A FakeKey to pickle: without the part bodies of a completed multipart upload.

    moto keeps every part's bytes beside the assembled object; persisting them would double the
    disk used by media archives. The part list stays (HEAD reports the parts count).
    """
    if getattr(version, "multipart", None) is None:
        return version
    lean = copy.copy(version)
    lean.multipart = copy.copy(version.multipart)
    lean.multipart.parts = {}
    return lean


class FolderStore:
    """moto's S3 backends mirrored into one folder; ``sync`` writes what changed since the last one."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._bucket_bytes: dict[str, bytes] = {}
        self._key_marks: dict[str, dict[str, tuple[Any, ...]]] = {}

    # --- start-up -------------------------------------------------------------------------
    def check_format(self) -> None:
        """Create the folder, or refuse one written by another moto version (pickles differ)."""
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / FORMAT_FILE
        wanted = f"moto {_moto_version()}\n"
        if not marker.exists():
            if any(p.name != FORMAT_FILE for p in self.root.iterdir()):
                raise SystemExit(f"{self.root} holds files but no {FORMAT_FILE}: not an S3 data folder of ours")
            _atomic_write(marker, wanted.encode())
            return
        for leftover in self.root.rglob(".*.tmp"):  # a write cut short by a kill: never acknowledged
            leftover.unlink()
        found = marker.read_text()
        if found != wanted:
            raise SystemExit(
                f"S3 data folder {self.root} was written by {found.strip()}, this is {wanted.strip()}: "
                f"reinstall that moto version, or wipe the local buckets with `make clean-s3` "
                f"(rm -rf {self.root})"
            )

    def restore(self) -> int:
        """Put every persisted bucket and object back into moto; returns the number of objects."""
        from moto.s3.models import s3_backends

        count = 0
        for bucket_dir in sorted(p for p in self.root.iterdir() if (p / BUCKET_FILE).is_file()):
            data = (bucket_dir / BUCKET_FILE).read_bytes()
            account_id, partition, bucket = pickle.loads(data)
            backend = s3_backends[account_id][partition]
            backend.buckets[bucket.name] = bucket
            s3_backends.bucket_accounts[bucket.name] = (partition, account_id)
            self._bucket_bytes[bucket.name] = data
            marks = self._key_marks.setdefault(bucket.name, {})
            for key_file in sorted((bucket_dir / OBJECTS_DIR).glob("*.pickle")):
                name, versions = pickle.loads(key_file.read_bytes())
                bucket.keys.setlist(name, versions)
                marks[name] = self._mark(versions)
                count += 1
        return count

    # --- write-through --------------------------------------------------------------------
    @staticmethod
    def _mark(versions: list[Any]) -> tuple[Any, ...]:
        """What identifies the state of one key's versions cheaply (object identity and ETag)."""
        return tuple((id(v), getattr(v, "_etag", None), getattr(v, "last_modified", None)) for v in versions)

    def _buckets(self) -> Iterable[tuple[str, str, Any]]:
        from moto.s3.models import s3_backends

        for account_id, by_partition in list(s3_backends.items()):
            for partition, backend in list(by_partition.items()):
                for bucket in list(backend.buckets.values()):
                    yield account_id, partition, bucket

    def sync(self, touched: tuple[str, str] | None = None) -> None:
        """Write every bucket setting and object that differs from the folder; drop what is gone.

        ``touched`` (bucket, key) is rewritten even if it looks unchanged: moto changes some
        settings of an object in place (its ACL), which the cheap comparison cannot see.
        """
        from moto.s3.models import MultipartDict
        from moto.s3.utils import _VersionedKeyStore

        seen: set[str] = set()
        for account_id, partition, bucket in self._buckets():
            seen.add(bucket.name)
            bucket_dir = self.root / bucket.name
            shell = copy.copy(bucket)
            shell.keys = _VersionedKeyStore()
            shell.multiparts = MultipartDict()
            data = pickle.dumps((account_id, partition, shell), protocol=pickle.HIGHEST_PROTOCOL)
            if self._bucket_bytes.get(bucket.name) != data:
                _atomic_write(bucket_dir / BUCKET_FILE, data)
                self._bucket_bytes[bucket.name] = data
            marks = self._key_marks.setdefault(bucket.name, {})
            current = {name: bucket.keys.getlist(name) for name in list(bucket.keys.keys())}
            for name, versions in current.items():
                mark = self._mark(versions)
                if marks.get(name) != mark or touched == (bucket.name, name):
                    blob = pickle.dumps((name, [_lean(v) for v in versions]), protocol=pickle.HIGHEST_PROTOCOL)
                    _atomic_write(_key_file(bucket_dir, name), blob)
                    marks[name] = mark
            for name in set(marks) - set(current):
                _key_file(bucket_dir, name).unlink(missing_ok=True)
                del marks[name]
        for gone in set(self._bucket_bytes) - seen:
            shutil.rmtree(self.root / gone, ignore_errors=True)
            self._bucket_bytes.pop(gone, None)
            self._key_marks.pop(gone, None)


def _touched(environ: dict[str, Any]) -> tuple[str, str] | None:
    """(bucket, key) named by a path-style request, if it names a key."""
    path = urllib.parse.unquote(environ.get("PATH_INFO", ""))
    parts = path.lstrip("/").split("/", 1)
    return (parts[0], parts[1]) if len(parts) == 2 and parts[1] else None


def _changes_nothing_kept(environ: dict[str, Any]) -> bool:
    """Part uploads change only in-progress uploads, which are not kept: no lock, no sync."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    return environ["REQUEST_METHOD"] == "PUT" and "partNumber" in query and "uploadId" in query


class WriteThrough:
    """WSGI middleware: a state-changing request is answered only once its change is on disk."""

    def __init__(self, app: Callable[..., Any], store: FolderStore) -> None:
        self.app = app
        self.store = store
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ["REQUEST_METHOD"] in ("GET", "HEAD", "OPTIONS") or _changes_nothing_kept(environ):
            return self.app(environ, start_response)
        with self.lock:  # one change at a time: sync sees a consistent backend
            body = self.app(environ, start_response)
            try:
                chunks = list(body)
            finally:
                close = getattr(body, "close", None)
                if close:
                    close()
            try:
                self.store.sync(_touched(environ))
            except Exception:
                log.exception("S3 data folder %s: could not persist %s %s", self.store.root,
                              environ["REQUEST_METHOD"], environ.get("PATH_INFO"))
                raise
        return chunks


def make_app(data: Path) -> tuple[Any, FolderStore, int]:
    """moto's WSGI app with the folder's state restored and write-through installed."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    store = FolderStore(data)
    store.check_format()
    restored = store.restore()
    return WriteThrough(DomainDispatcherApplication(create_backend_app), store), store, restored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ioarchive.devtools.s3server", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder holding the buckets (created if missing)")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    app, store, restored = make_app(Path(args.data))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)

    def stop(*_: Any) -> None:  # serve_forever returns; a change being written is finished below
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("S3 on http://%s:%d, %d object(s) restored from %s", args.host, args.port, restored, store.root)
    server.serve_forever()
    with app.lock:
        log.info("S3 server stopped; state kept in %s", store.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
