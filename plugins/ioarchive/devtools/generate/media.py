"""Media for the synthetic campaign: how many files of each kind, how large, and their bytes.

Files are written fast and deterministically: one pseudo-random block derived from the seed is
re-used for every body (no per-byte random calls), and a per-file header carrying the media key
makes every file's bytes and sha256 distinct. Headers follow the real container formats (JPEG
SOI/JFIF, PNG signature + IHDR, MP4 ftyp, GIF89a) so type sniffers see plausible files.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

BLOCK_BYTES = 1024 * 1024
MIN_FILE_BYTES = 512
REALISTIC_MEDIA_BYTES = 1024**3
"""At or above this total, file sizes follow the real ranges; below, they shrink (sqrt)."""

# kind: (min bytes, max bytes) of a real file, log-uniform in between.
SIZE_RANGES: dict[str, tuple[int, int]] = {
    "photo": (30 * 1024, 3 * 1024**2),
    "video": (500 * 1024, 40 * 1024**2),
    "animated_gif": (100 * 1024, 8 * 1024**2),
    "profile_image": (5 * 1024, 150 * 1024),
    "profile_banner": (40 * 1024, 600 * 1024),
}
# kind: files per post (post media) or per account (profile media) in a full-size release.
PER_POST = {"photo": 0.12, "video": 0.015, "animated_gif": 0.008}
PER_ACCOUNT = {"profile_image": 0.9, "profile_banner": 0.5}
MIN_COUNT = {"photo": 6, "video": 2, "animated_gif": 2, "profile_image": 4, "profile_banner": 2}
MEDIA_KEY_PREFIX = {"photo": "3", "video": "7", "animated_gif": "16", "profile_image": "3", "profile_banner": "3"}


@dataclass
class MediaFile:
    """One media file: its record fields (``media.jsonl``) and how to make its bytes."""

    media_key: str
    kind: str
    user_id: str
    post_id: str | None
    ext: str
    size: int
    sha256: str = ""

    @property
    def path(self) -> str:
        """Path relative to ``media/``: ``<userid>/<media_key>.<ext>``."""
        return f"{self.user_id}/{self.media_key}.{self.ext}"

    def record(self) -> dict:
        return {
            "media_key": self.media_key,
            "post_id": self.post_id,
            "user_id": self.user_id,
            "kind": self.kind,
            "path": self.path,
            "bytes": self.size,
            "sha256": self.sha256,
        }


def _log_uniform_mean(lo: float, hi: float) -> float:
    return (hi - lo) / math.log(hi / lo)


def plan_counts(media_bytes: int, accounts: int, posts: int) -> tuple[dict[str, int], float]:
    """Files per kind and the size factor so that the total is about ``media_bytes``.

    Small budgets get both fewer and smaller files (sizes scale with the square root of the
    budget below 1 GiB) while every kind keeps at least ``MIN_COUNT`` files.
    """
    size_factor = min(1.0, math.sqrt(max(media_bytes, 1) / REALISTIC_MEDIA_BYTES))
    desired = {k: posts * v for k, v in PER_POST.items()} | {k: accounts * v for k, v in PER_ACCOUNT.items()}
    expected = sum(desired[k] * _log_uniform_mean(*SIZE_RANGES[k]) * size_factor for k in desired)
    # Above the nominal rate, add files (up to 3x) rather than only growing them past real sizes.
    count_factor = min(3.0, media_bytes / expected) if expected else 1.0
    counts = {k: max(MIN_COUNT[k], round(desired[k] * count_factor)) for k in SIZE_RANGES}
    counts["profile_image"] = min(counts["profile_image"], accounts)
    counts["profile_banner"] = min(counts["profile_banner"], accounts)
    return counts, size_factor


def sample_sizes(rng: random.Random, files: list[MediaFile], size_factor: float, media_bytes: int) -> None:
    """Draw each file's size (log-uniform in its kind's range), then rescale to the budget.

    Rescaling respects each kind's maximum (no 300 MB photo), so files that hit a bound are
    fixed and the others absorb the rest; a few rounds get within a fraction of a percent.
    """
    sizes = []
    for f in files:
        lo, hi = SIZE_RANGES[f.kind]
        sizes.append(math.exp(rng.uniform(math.log(lo), math.log(hi))) * size_factor)
    highs = [SIZE_RANGES[f.kind][1] for f in files]
    for _ in range(6):
        total = sum(sizes)
        if not total or abs(total - media_bytes) <= 0.002 * media_bytes:
            break
        free = [j for j, v in enumerate(sizes) if MIN_FILE_BYTES < v < highs[j]]
        free_total = sum(sizes[j] for j in free)
        if not free_total:
            break
        scale = max(media_bytes - (total - free_total), 0) / free_total
        for j in free:
            sizes[j] = min(max(sizes[j] * scale, MIN_FILE_BYTES), highs[j])
    for f, v in zip(files, sizes, strict=True):
        f.size = int(v)


def media_ext(rng: random.Random, kind: str) -> str:
    if kind in ("video",):
        return "mp4"
    if kind == "animated_gif":
        return "gif"
    if kind == "profile_banner":
        return "jpg"
    return "png" if rng.random() < 0.15 else "jpg"


def header(ext: str, media_key: str) -> tuple[bytes, bytes]:
    """(leading bytes, trailing bytes) of a file of this type, unique per media key."""
    tag = media_key.encode("ascii")
    if ext == "jpg":
        comment = b"ioarchive-synthetic " + tag
        head = (
            b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            + b"\xff\xfe"
            + struct.pack(">H", len(comment) + 2)
            + comment
        )
        return head, b"\xff\xd9"
    if ext == "png":
        ihdr = struct.pack(">IIBBBBB", 640, 480, 8, 2, 0, 0, 0)
        text = b"Comment\x00ioarchive-synthetic " + tag

        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tEXt", text), chunk(b"IEND", b"")
    if ext == "mp4":
        ftyp = b"ftyp" + b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41"
        free = b"free" + b"ioarchive-synthetic " + tag
        return struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", len(free) + 4) + free, b""
    if ext == "gif":
        comment = (b"ioarchive-synthetic " + tag)[:255]
        head = b"GIF89a" + struct.pack("<HHBBB", 320, 240, 0, 0, 0) + b"\x21\xfe" + bytes([len(comment)]) + comment + b"\x00"
        return head, b"\x3b"
    raise ValueError(f"unknown media extension {ext!r}")


def random_block(seed: int) -> bytes:
    """The shared pseudo-random body block of a campaign (deterministic per seed)."""
    return random.Random(f"{seed}-media-block").randbytes(BLOCK_BYTES)


def write_media_file(path: Path, ext: str, media_key: str, size: int, block: bytes, offset: int) -> tuple[int, str]:
    """Write a file of exactly ``size`` bytes (or the header's size if larger); return (bytes, sha256)."""
    head, tail = header(ext, media_key)
    body = max(size - len(head) - len(tail), 0)
    digest = hashlib.sha256()
    view = memoryview(block)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(head)
        digest.update(head)
        pos = offset % len(block)
        while body > 0:
            piece = view[pos : pos + body]
            fh.write(piece)
            digest.update(piece)
            body -= len(piece)
            pos = 0
        fh.write(tail)
        digest.update(tail)
    return max(size, len(head) + len(tail)), digest.hexdigest()
