"""The on-disk spool: order, durability across reopen, bounds that drop the oldest and count it."""

from __future__ import annotations

import json

import pytest

from agent.spool import Spool, SpoolError, SpoolLimits


def payload(seq: int, dropped: int, backlog: int) -> bytes:
    return json.dumps({"seq": seq, "dropped": dropped, "backlog": backlog}).encode()


def test_append_pending_remove_in_order(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    seqs = [spool.append(payload) for _ in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert [s for s, _ in spool.pending()] == seqs
    assert [s for s, _ in spool.pending(after=3)] == [4, 5]
    spool.remove(2)
    assert [s for s, _ in spool.pending()] == [1, 3, 4, 5]
    assert json.loads(spool.pending()[-1][1]) == {"seq": 5, "dropped": 0, "backlog": 4}


def test_sequence_and_backlog_survive_reopen(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    for _ in range(3):
        spool.append(payload)
    spool.remove(1)
    spool.close()
    again = Spool(tmp_path / "spool.db")
    assert [s for s, _ in again.pending()] == [2, 3]
    assert again.append(payload) == 4, "seq must never repeat, even after a restart"


def test_sequence_survives_an_empty_spool(tmp_path):
    spool = Spool(tmp_path / "spool.db")
    for seq in (spool.append(payload), spool.append(payload)):
        spool.remove(seq)
    spool.close()
    assert Spool(tmp_path / "spool.db").append(payload) == 3


def test_count_bound_drops_oldest_and_counts(tmp_path):
    spool = Spool(tmp_path / "spool.db", SpoolLimits(max_reports=10))
    for _ in range(25):
        spool.append(payload)
    assert [s for s, _ in spool.pending()] == list(range(16, 26))
    assert spool.dropped == 15
    assert json.loads(spool.pending()[-1][1])["dropped"] == 15, "the drop count travels in the report"


def test_age_bound_drops_old_reports(tmp_path):
    spool = Spool(tmp_path / "spool.db", SpoolLimits(max_age=60))
    spool.append(payload, now=1000.0)
    spool.append(payload, now=1030.0)
    spool.append(payload, now=1100.0)  # 1000 and 1030 are now older than 60 s
    assert [s for s, _ in spool.pending()] == [3]
    assert spool.dropped == 2


def test_byte_bound_drops_oldest(tmp_path):
    spool = Spool(tmp_path / "spool.db", SpoolLimits(max_bytes=65536))
    big = lambda seq, d, b: b"x" * 20000  # noqa: E731
    for _ in range(6):
        spool.append(big)
    assert sum(len(p) for _, p in spool.pending()) <= 65536
    assert [s for s, _ in spool.pending()] == [4, 5, 6] and spool.dropped == 3


def test_failed_build_leaves_no_trace(tmp_path):
    spool = Spool(tmp_path / "spool.db")

    def broken(seq, dropped, backlog):
        raise ValueError("collector bug")

    with pytest.raises(ValueError):
        spool.append(broken)
    assert spool.pending() == [] and spool.append(payload) == 1


def test_unusable_spool_path_says_what_to_do(tmp_path):
    (tmp_path / "data").write_text("a file where the data dir should be")
    with pytest.raises(SpoolError, match="writable by the agent user"):
        Spool(tmp_path / "data" / "spool.db")


def test_corrupt_spool_says_what_to_do(tmp_path):
    (tmp_path / "spool.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(SpoolError, match="cannot open the report spool"):
        Spool(tmp_path / "spool.db")
