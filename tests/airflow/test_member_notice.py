"""The members' withdrawal notice lists every withdrawn file with its SHA-256."""

from __future__ import annotations

from ioarchive.airflow.member_notice import withdrawal_notice
from ioarchive.airflow.notifiers import send


def test_notice_lists_every_withdrawn_file(caplog):
    files = [{"name": "x_202102_users_csv_unhashed.zip", "bytes": 10, "sha256": "a" * 64},
             {"name": "media/x_202102_tweet_media_unhashed_001.zip", "bytes": 20, "sha256": "b" * 64}]
    public = [{"name": "x_202102_users_csv_hashed.zip", "bytes": 9, "sha256": "c" * 64}]
    message = withdrawal_notice("x_202102", 2, "appeal granted", [
        {"version": 1, "variant": "unhashed", "url": "s3://members/releases/x_202102/v1/", "files": files},
        {"version": 1, "variant": "hashed", "url": "s3://public/releases/x_202102/v1/", "files": public}])
    assert message.subject == "[ioarchive] x_202102 v1 withdrawn: delete local copies"
    body = message.body.splitlines()
    assert body[0] == "Release x_202102: v1 withdrawn, superseded by v2."
    for f in [*files, *public]:
        assert f"  {f['sha256']}  {f['name']}  ({f['bytes']} bytes)" in body
    assert body.index("v1 hashed (s3://public/releases/x_202102/v1/):") < body.index(
        "v1 unhashed (s3://members/releases/x_202102/v1/):")
    with caplog.at_level("WARNING"):
        assert send(message) == "log"
    assert "b" * 64 in caplog.text
