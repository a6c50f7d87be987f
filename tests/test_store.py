"""The results store: committed rows survive torn writes, repeats and concurrent writers."""

from __future__ import annotations

import pandas as pd
import pytest

from dvdlib.store import (ResultLog, StoreError, atomic_write_bytes, ensure_writable_dir, load_table,
                          remove_temporaries, save_table)


def _rows(n, start=0):
    return [{"case_num": i // 2 + 1, "seed": i % 2, "value": f"row {i}", "answers": [True, False]}
            for i in range(start, start + n)]


def test_rows_round_trip_in_key_order(tmp_path):
    log = ResultLog(tmp_path / "a.log", key=("case_num", "seed"))
    with log.open():
        log.append(reversed(_rows(4)))
    assert log.rows() == list(reversed(_rows(4)))  # as written
    table = log.table()
    assert list(zip(table.case_num, table.seed)) == [(1, 0), (1, 1), (2, 0), (2, 1)]  # sorted by key
    assert table.loc[0, "answers"] == [True, False]
    assert log.done_keys() == {(1, 0), (1, 1), (2, 0), (2, 1)}


def test_a_repeated_key_keeps_the_first_row(tmp_path):
    log = ResultLog(tmp_path / "a.log", key=("case_num", "seed"))
    first, again = {"case_num": 1, "seed": 0, "value": "first"}, {"case_num": 1, "seed": 0, "value": "again"}
    with log.open():
        log.append([first])
        log.append([again])
    assert log.rows() == [first]


def test_a_torn_last_line_is_not_a_row_and_is_cut_before_appending(tmp_path):
    path = tmp_path / "a.log"
    log = ResultLog(path, key=("case_num", "seed"))
    with log.open():
        log.append(_rows(2))
    whole = path.read_bytes()
    with log.open():
        log.append(_rows(1, start=2))
    path.write_bytes(path.read_bytes()[:-7])  # a write killed half-way through the third line
    assert log.rows() == _rows(2)
    assert log.skipped_lines() == 1
    with log.open():  # the next writer cuts the torn line off ...
        assert path.read_bytes() == whole
        log.append(_rows(2, start=2))  # ... so the new lines start on a line of their own
    assert log.rows() == _rows(4)
    assert log.skipped_lines() == 0


def test_a_damaged_line_fails_its_checksum_and_is_skipped(tmp_path):
    path = tmp_path / "a.log"
    log = ResultLog(path, key=("case_num", "seed"))
    with log.open():
        log.append(_rows(3))
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"row 1", b"row 9")  # same length, wrong content
    path.write_bytes(b"\n".join(lines))
    assert [r["value"] for r in log.rows()] == ["row 0", "row 2"]
    assert log.skipped_lines() == 1


def test_a_second_writer_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "a.log"
    with ResultLog(path, key=("case_num",)).open():
        with pytest.raises(StoreError, match="another process"):
            ResultLog(path, key=("case_num",)).open()
    with ResultLog(path, key=("case_num",)).open():  # released on close
        pass


def test_append_needs_an_open_log_and_the_key_columns(tmp_path):
    log = ResultLog(tmp_path / "a.log", key=("case_num", "seed"))
    with pytest.raises(StoreError, match="not open"):
        log.append(_rows(1))
    with log.open(), pytest.raises(ValueError, match="seed"):
        log.append([{"case_num": 1}])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tables_are_written_whole_and_read_back(tmp_path, suffix):
    table = pd.DataFrame({"case_num": [1, 2], "prompt": ["Van Gogh's \"Starry\", Night", "Café"]})
    path = save_table(table, tmp_path / f"t{suffix}")
    pd.testing.assert_frame_equal(load_table(path), table)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_table_suffix_we_do_not_write_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"'\.xlsx'.*\.csv, \.parquet"):
        save_table(pd.DataFrame(), tmp_path / "t.xlsx")


def test_an_unwritable_folder_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="output folder .*file/out.* cannot be used: .*file' is a file, "
                                         "not a folder"):
        ensure_writable_dir(blocker / "out")
    assert not (blocker.parent / "out").exists()


def test_leftover_temporaries_are_removed(tmp_path):
    atomic_write_bytes(tmp_path / "kept.png", b"done")
    (tmp_path / ".kept.png.abc.tmp").write_bytes(b"half")  # what a killed writer leaves
    (tmp_path / ".record.xyz.tmp").mkdir()
    remove_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.png"]


# --- what the toy world writes: checkpoints, JSON, whole folders, under a folder lock -------------

def test_json_and_checkpoints_are_written_atomically_and_readable_by_all(tmp_path):
    import torch

    from dvdlib.store import atomic_write_json, load_checkpoint, load_json, save_torch

    record = atomic_write_json(tmp_path / "record.json", {"b": 1, "a": [1, 2]})
    assert load_json(record) == {"a": [1, 2], "b": 1} and record.stat().st_mode & 0o777 == 0o644
    assert load_checkpoint(tmp_path / "none.pt", {"lr": 1}) is None
    state = save_torch({"config": {"lr": 1}, "weights": torch.ones(2)}, tmp_path / "state.pt")
    assert state.stat().st_mode & 0o777 == 0o644
    assert torch.equal(load_checkpoint(state, {"lr": 1})["weights"], torch.ones(2))
    with pytest.raises(ValueError, match="state.pt was written with a different configuration"):
        load_checkpoint(state, {"lr": 2})
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_folder_is_swapped_in_whole_or_not_at_all(tmp_path):
    from dvdlib.store import atomic_folder

    def write(files):
        def fill(folder):
            for name, text in files.items():
                (folder / name).write_text(text)
        return fill

    target = atomic_folder(tmp_path / "pipeline", write({"a.txt": "1", "b.txt": "2"}))
    assert target.stat().st_mode & 0o777 == 0o755
    atomic_folder(target, write({"c.txt": "3"}))
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]

    def fail(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_folder(target, fail)
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipeline"]


def test_a_folder_lock_refuses_a_second_run_and_takes_over_a_dead_ones(tmp_path):
    import os

    from dvdlib.store import folder_lock

    with folder_lock(tmp_path / "run") as folder:
        assert (folder / ".lock").read_text() == str(os.getpid())
        with pytest.raises(StoreError, match=f"in use by process {os.getpid()}"):
            with folder_lock(folder):
                pass
    assert not (tmp_path / "run" / ".lock").exists()
    (tmp_path / "run" / ".lock").write_text("999999999")  # no such process
    with folder_lock(tmp_path / "run"):
        pass
