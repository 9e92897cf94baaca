"""Atomic writes: the old file or the whole new one, never half of one, nothing left behind."""

import json

import pytest

from segvit.errors import SegvitError
from segvit.fileio import (
    TMP_SUFFIX,
    atomic_write,
    check_folder,
    exclusive_lock,
    read_json,
    write_json,
    write_text,
)


def test_text_and_json_round_trip(tmp_path):
    write_text(tmp_path / "a.txt", "héllo\n")
    write_json(tmp_path / "a.json", {"x": [1, 2]}, indent=1)
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2]}
    assert (tmp_path / "a.json").read_text().endswith("\n")


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "table.md"
    write_text(target, "old")

    def half_then_fail(file):
        file.write(b"new but incompl")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == "old"
    assert not list(tmp_path.glob(f"*{TMP_SUFFIX}"))


def test_a_new_file_appears_only_when_complete(tmp_path):
    target = tmp_path / "w.bin"
    seen = []

    def write(file):
        file.write(b"abc")
        seen.append(target.exists())  # not there yet while being written

    atomic_write(target, write)
    assert seen == [False] and target.read_bytes() == b"abc"


def test_a_second_holder_of_a_lock_fails_at_once_naming_the_first(tmp_path):
    lock = tmp_path / "runs" / ".reproduce.lock"
    with exclusive_lock(lock, "`segvit reproduce table8`"):
        second = exclusive_lock(lock, "`segvit reproduce table8`")
        with pytest.raises(SegvitError, match=r"already running \(pid \d+\); wait for it"), second:
            pass
    with exclusive_lock(lock, "`segvit reproduce table8`"):  # released: free again
        pass


def test_two_processes_cannot_hold_one_lock(tmp_path):
    import subprocess
    import sys

    lock = tmp_path / ".lock"
    code = (
        "import sys, time; from segvit.fileio import exclusive_lock\n"
        f"with exclusive_lock({str(lock)!r}, 'x'):\n"
        "    print('held', flush=True); time.sleep(30)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SegvitError, match=f"pid {holder.pid}"), exclusive_lock(lock, "x"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with exclusive_lock(lock, "x"):  # a killed holder leaves no stale lock
        pass


def test_read_json_is_none_for_missing_or_broken_files(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1}, indent=1)
    assert read_json(tmp_path / "m.json") == {"a": 1}
    (tmp_path / "bad.json").write_text("{")
    assert read_json(tmp_path / "bad.json") is None
    assert read_json(tmp_path / "missing.json") is None


def test_a_folder_option_naming_a_file_fails_before_any_work(tmp_path):
    (tmp_path / "taken").write_text("x")
    with pytest.raises(SegvitError, match=r"^--out .*taken: a file is there; expected a folder$"):
        check_folder(tmp_path / "taken", "--out")
    with pytest.raises(SegvitError, match=r"taken/sub: a file is there \(.*taken is a file\)"):
        check_folder(tmp_path / "taken" / "sub", "--root")
    assert check_folder(tmp_path / "new" / "sub", "--out") == tmp_path / "new" / "sub"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_a_folder_that_cannot_be_written_is_found_before_any_work(tmp_path, monkeypatch):
    """A read-only folder or disk (root ignores permission bits, so the refusal is staged)."""
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(SegvitError, match=r"--out .*res: cannot write there \(.*\): Permission"):
        check_folder(tmp_path / "res", "--out")
