"""The conversion lock: one holder at a time, and no lock file left when it ends."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from keras_danet.file_lock import exclusive_lock

# Each child takes the lock `rounds` times and appends "in"/"out" around a short hold; with
# mutual exclusion the log is a strict alternation, whatever the interleaving of processes.
CONTENDER = textwrap.dedent(
    """
    import os, sys, time
    from keras_danet.file_lock import exclusive_lock

    lock, log, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    for _ in range(rounds):
        with exclusive_lock(lock):
            with open(log, "a") as file:
                file.write("in\\n")
            time.sleep(0.002)
            with open(log, "a") as file:
                file.write("out\\n")
    """
)


def test_the_lock_file_goes_however_the_block_ends(tmp_path):
    lock = tmp_path / ".preset.lock"
    with exclusive_lock(lock):
        assert lock.exists()
    assert not lock.exists()
    with pytest.raises(KeyboardInterrupt), exclusive_lock(lock):
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


@pytest.mark.one_backend
def test_processes_take_turns_while_the_file_comes_and_goes(tmp_path):
    lock, log = tmp_path / ".preset.lock", tmp_path / "log"
    children = [
        subprocess.Popen([sys.executable, "-c", CONTENDER, str(lock), str(log), "40"])
        for _ in range(3)
    ]
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0]
    lines = log.read_text().split()
    assert lines == ["in", "out"] * 120
    assert sorted(os.listdir(tmp_path)) == ["log"]


@pytest.mark.one_backend
def test_a_lock_left_by_a_killed_holder_is_taken_and_removed(tmp_path):
    lock = tmp_path / ".preset.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom keras_danet.file_lock import exclusive_lock\n"
            "with exclusive_lock(sys.argv[1]):\n    print('held', flush=True)\n"
            "    time.sleep(60)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert lock.exists()  # SIGKILL runs no cleanup; the kernel released the lock itself
    with exclusive_lock(lock):
        pass
    assert not lock.exists()
