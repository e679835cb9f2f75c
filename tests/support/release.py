"""Hand-made staged release folders for publication and verification tests.

Writes ``<staging>/release/<variant>/`` in the published shape (README.md, data files in
subfolders, SHA256SUMS, manifest.json with release_id, version, variant and
files[].name/bytes/sha256/rows) and the quality-gate summaries ``validation/<variant>/
summary.json``, without running the pipeline, so publication tests stay fast.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ioarchive.staging import StagingLayout

VARIANTS = ("hashed", "unhashed")


def data_files(release_id: str, variant: str, big_bytes: int = 0) -> dict[str, bytes]:
    """Release file name -> content; deterministic except the optional random big file."""
    files = {
        f"{release_id}_users_csv_{variant}.zip": f"PK users {variant} \x00\x01".encode() * 50,
        f"{release_id}_tweets_csv_{variant}.zip": f"PK tweets {variant} ".encode() * 400,
        "parquet/users.parquet": b"PAR1" + variant.encode() * 100 + b"PAR1",
        "parquet/tweets/part-00000.parquet": b"PAR1" + b"t" * 3000 + b"PAR1",
        "media/media_index.csv": b'"media_key","tweetid"\n"3_1","11"\n',
        f"media/{release_id}_tweet_media_{variant}_001.zip": b"PK media " + variant.encode() * 2000,
    }
    if big_bytes:
        files[f"media/{release_id}_tweet_media_{variant}_002.zip"] = os.urandom(big_bytes)
    return files


def write_release(
    staging: Path,
    release_id: str,
    *,
    version: int = 1,
    variants: tuple[str, ...] = VARIANTS,
    big_bytes: int = 0,
    validation_success: dict[str, bool] | None = None,
) -> StagingLayout:
    """Write staged release folders for ``variants`` and passing validation summaries."""
    layout = StagingLayout(staging, release_id)
    for variant in variants:
        rewrite_release(layout, variant, data_files(release_id, variant, big_bytes), version=version)
    for variant in VARIANTS:
        success = (validation_success or {}).get(variant, True)
        vdir = layout.validation_dir(variant)
        vdir.mkdir(parents=True, exist_ok=True)
        (vdir / "summary.json").write_text(json.dumps({"success": success, "suites": {}}))
    return layout


def rewrite_release(layout: StagingLayout, variant: str, files: dict[str, bytes], *, version: int = 1) -> None:
    """(Re)write one variant's folder so that manifest, SHA256SUMS and files agree."""
    root = layout.release_dir(variant)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    readme = f"# {layout.release_id} v{version} ({variant})\n".encode()
    layout.readme(variant).write_bytes(readme)
    listed = {**files, "README.md": readme}
    entries = [
        {"name": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "rows": None}
        for name, data in sorted(listed.items())
    ]
    sums = "".join(f"{e['sha256']}  {e['name']}\n" for e in entries).encode()
    layout.sha256sums(variant).write_bytes(sums)
    # Like the renderer: the manifest lists every file but itself, SHA256SUMS included.
    entries.append({"name": "SHA256SUMS", "bytes": len(sums), "sha256": hashlib.sha256(sums).hexdigest(), "rows": None})
    entries.sort(key=lambda e: e["name"])
    manifest = {"release_id": layout.release_id, "version": version, "variant": variant, "files": entries}
    layout.manifest(variant).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def extract_both_variants(spark, campaign_dir, staging, release_id: str, key_file, key_id: str = "k1",
                          csv_part_max_bytes: int | None = None) -> None:
    """Extract and pseudonymize through the stage functions the DAG, the CLI and jobs/ call."""
    from ioarchive.extract.stage import extract_stage
    from ioarchive.pseudonymize.stage import pseudonymize_stage
    from ioarchive.spark.job_settings import StepSettings

    extra = {"csv_part_max_bytes": csv_part_max_bytes} if csv_part_max_bytes else {}
    settings = StepSettings(staging_dir=str(staging), release_id=release_id, campaign_dir=str(campaign_dir),
                            key_file=str(key_file), key_id=key_id, **extra)
    extract_stage(spark, settings)
    pseudonymize_stage(spark, settings)
