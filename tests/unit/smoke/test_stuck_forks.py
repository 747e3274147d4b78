"""Finding forks of a JVM stuck in qemu before exec, from a process table as the host's /proc shows it."""

from __future__ import annotations

from pathlib import Path

from moka_images.smoke.stuck_forks import read_process_table, stuck_forks

QEMU = b"/usr/libexec/qemu-binfmt/aarch64-binfmt-P\0"
JVM = QEMU + b"/usr/lib/jvm/default-java-17/bin/java\0/usr/lib/jvm/default-java-17/bin/java\0-cp\0jars/*\0"
SPARK_CLASS = QEMU + b"/usr/bin/bash\0bash\0/opt/spark/bin/spark-class\0--class\0JavaWordCount\0"
PYTHON_DAEMON = QEMU + b"/opt/python/bin/python\0-m\0pyspark.daemon\0"
TABLE = {
    100: (1, b"containerd-shim\0"),
    200: (100, QEMU + b"/usr/bin/tini\0--\0spark-submit\0"),  # the container's main process
    201: (200, JVM),
    202: (201, JVM),  # forked by the JVM, never reached exec
    203: (201, QEMU + b"/usr/bin/chmod\x000644\0part-0\0"),  # exec'd normally
    204: (201, PYTHON_DAEMON),
    205: (204, PYTHON_DAEMON),  # pyspark's daemon forks its workers without exec: not a JVM, left alone
    206: (200, SPARK_CLASS),
    207: (206, SPARK_CLASS),  # spark-class's `$(...)` subshell: a bash, whatever its arguments say
    300: (1, JVM),
    301: (300, JVM),  # the same shape in another container: not below this root
}


def test_only_a_jvm_copy_below_the_root_counts_once_it_outlasts_the_delay() -> None:
    first_seen: dict[int, float] = {}
    assert stuck_forks(TABLE, 200, first_seen, now=10.0, after=20.0) == []
    assert first_seen == {202: 10.0}
    assert stuck_forks(TABLE, 200, first_seen, now=29.0, after=20.0) == []
    assert stuck_forks(TABLE, 200, first_seen, now=30.0, after=20.0) == [202]


def test_a_fork_that_went_on_to_exec_is_forgotten() -> None:
    first_seen = {202: 0.0}
    moved_on = {**TABLE, 202: (201, QEMU + b"/usr/bin/rm\0-rf\0/tmp/spark-1\0")}
    assert stuck_forks(moved_on, 200, first_seen, now=100.0) == [] and first_seen == {}


def test_the_table_is_read_from_proc(tmp_path: Path) -> None:
    for pid, (ppid, cmdline) in {7: (1, JVM), 8: (7, JVM)}.items():
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_bytes(f"{pid} (qemu-aarch64 (x)) S {ppid} 7 7 0".encode())
        (tmp_path / str(pid) / "cmdline").write_bytes(cmdline)
    (tmp_path / "self").mkdir()
    (tmp_path / "9").mkdir()  # ended while being read
    assert read_process_table(tmp_path) == {7: (1, JVM), 8: (7, JVM)}
