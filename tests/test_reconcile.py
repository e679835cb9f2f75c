"""reconcile: the books balance by construction; moving to quarantine keeps them balanced."""

from __future__ import annotations

import json

import pytest
from ioarchive import reconcile
from ioarchive.staging import StagingLayout


def _layout(tmp_path):
    layout = StagingLayout(tmp_path, "x_202102")
    data = reconcile.empty("x_202102")
    data["tables"]["media"].update(read=10, released=7, excluded={"deleted": 2}, quarantined={"path_escape": 1})
    reconcile.save(layout, data)
    return layout


def test_move_to_quarantine_moves_counts_and_appends_records(tmp_path):
    layout = _layout(tmp_path)
    rec = reconcile.quarantine_record("media/a.jpg", 0, "sha256_mismatch", "k1")
    out = reconcile.move_to_quarantine(layout, "media", "sha256_mismatch", 1, [rec])
    assert out["tables"]["media"]["released"] == 6
    assert out["tables"]["media"]["quarantined"] == {"path_escape": 1, "sha256_mismatch": 1}
    assert out["balanced"] is True
    assert reconcile.load(layout) == out
    lines = layout.quarantine_media.read_text().splitlines()
    assert [json.loads(x)["reason"] for x in lines] == ["sha256_mismatch"]
    assert not layout.quarantine_records.exists()
    reconcile.move_to_quarantine(layout, "media", "sha256_mismatch", 2)
    assert reconcile.load(layout)["tables"]["media"]["quarantined"]["sha256_mismatch"] == 3


def test_move_to_quarantine_refuses_more_than_released(tmp_path):
    layout = _layout(tmp_path)
    with pytest.raises(reconcile.ReconciliationError, match="only 7"):
        reconcile.move_to_quarantine(layout, "media", "size_mismatch", 8)
    assert reconcile.load(layout)["tables"]["media"]["released"] == 7


def test_save_recomputes_balanced(tmp_path):
    layout = StagingLayout(tmp_path, "x_202102")
    data = reconcile.empty("x_202102")
    data["tables"]["posts"]["read"] = 3
    assert reconcile.save(layout, data)["balanced"] is False
    assert reconcile.load(layout)["balanced"] is False
