"""``ioarchive pack-media`` refuses a bad release id with one line, not a traceback."""

from __future__ import annotations

import pytest
from ioarchive.cli.main import main


@pytest.mark.parametrize("release_id", ["Iran_202102", "iran_202113", "iran_202100", "iran-202102", "iran"])
def test_bad_release_id_is_a_one_line_error(release_id, tmp_path, capsys):
    staging = tmp_path / "staging"
    code = main(["pack-media", "--campaign", str(tmp_path / "campaign"), "--staging", str(staging),
                 "--release-id", release_id])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("ioarchive pack-media: release id ") and repr(release_id) in lines[0]
    assert "Traceback" not in err
    assert not staging.exists()
