"""The PySpark smoke jobs, run in sequence by ONE Spark application inside the image under test.

Copied into the container and started through the image's Kubernetes entrypoint in driver mode, as a driver
pod would be (`driver ... --class org.apache.spark.deploy.PythonRunner local:///.../pyspark_suite.py
JOB=SECONDS ...`). Each job computes something, checks it against an answer computed in plain Python, and
prints one line `MOKA_RESULT {"job", "status", "value", "error", "seconds", "info"}`; a job that overruns its
limit has its Spark jobs cancelled and is reported as timed out, and the next job still runs. A fork of the
JVM that deadlocks in an emulator is killed and its job retried (`StuckForkReaper`).
Standard library and pyspark only.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import runpy
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import uuid

N = 20_000
JSON_PROBE = "moka-smoke json probe"


def entrypoint(spark):
    """What the entrypoint's driver mode must set up: bind address, client mode, a non-root user, workers."""
    conf = spark.sparkContext.getConf()
    bind = conf.get("spark.driver.bindAddress", None)
    mode = conf.get("spark.submit.deployMode", None)
    _check(bind == os.environ.get("SPARK_DRIVER_BIND_ADDRESS"),
           f"spark.driver.bindAddress is {bind!r}, not SPARK_DRIVER_BIND_ADDRESS")
    _check(mode == "client", f"deploy mode is {mode!r}, not client")
    _check(os.getuid() != 0, "the driver runs as root")
    total = spark.sparkContext.parallelize(range(1000), 2).map(lambda x: x * x).sum()
    _check(total == sum(x * x for x in range(1000)), f"sum of squares from Python workers is {total}")
    return {"sum_of_squares": total, "deploy_mode": mode, "non_root": True}


def dataframe_sql(spark):
    """DataFrame API and SQL over the same data must agree with plain Python."""
    df = spark.range(0, N).selectExpr("id", "id % 10 AS bucket", "CAST(id * 3 AS DOUBLE) AS x")
    df.createOrReplaceTempView("moka_numbers")
    rows = spark.sql(
        "SELECT bucket, COUNT(*) AS n, SUM(x) AS total FROM moka_numbers "
        "WHERE id % 2 = 0 GROUP BY bucket ORDER BY bucket"
    ).collect()
    got = [[r["bucket"], r["n"], int(r["total"])] for r in rows]
    want = []
    for b in range(0, 10, 2):
        ids = [i for i in range(N) if i % 10 == b]
        want.append([b, len(ids), sum(3 * i for i in ids)])
    api_total = int(df.filter("id % 2 = 0").agg({"x": "sum"}).collect()[0][0])
    _check(got == want, f"SQL gave {got[:2]}..., expected {want[:2]}...")
    _check(api_total == sum(t for _, _, t in want), f"DataFrame sum {api_total} differs from SQL")
    return {"groups": got}


def python_udf(spark):
    """A Python UDF runs in Python workers, the piece that breaks first on a foreign arch."""
    from pyspark.sql.functions import col, udf
    from pyspark.sql.types import StringType

    def label(i):
        return f"{i % 97:02d}-{str(i)[::-1]}"

    labelled = spark.range(0, N, numPartitions=2).select(udf(label, StringType())(col("id")).alias("s"))
    rows = labelled.groupBy(labelled.s.substr(1, 2).alias("p")).count().orderBy("p").collect()
    got = {r["p"]: r["count"] for r in rows}
    want = {}
    for i in range(N):
        key = label(i)[:2]
        want[key] = want.get(key, 0) + 1
    _check(got == want, f"UDF prefix counts differ from plain Python in {len(set(got.items()) ^ set(want.items()))} keys")
    checksum = sum(int(p) * n for p, n in got.items())
    return {"prefixes": len(got), "checksum": checksum}


def parquet(spark):
    """Write Parquet into a temp dir inside the container and read it back (native compression codecs)."""
    from pyspark.sql.functions import col

    target = tempfile.mkdtemp(prefix="moka-smoke-parquet-")
    try:
        path = os.path.join(target, "table")
        df = spark.range(0, N, numPartitions=2).select(
            col("id"), (col("id") % 5).alias("k"), (col("id") * 0.5).alias("half"))
        df.write.mode("overwrite").partitionBy("k").option("compression", "snappy").parquet(path)
        files = [f for _, _, names in os.walk(path) for f in names if f.endswith(".parquet")]
        back = spark.read.parquet(path)
        count = back.count()
        total = back.agg({"half": "sum"}).collect()[0][0]
        keys = sorted(r["k"] for r in back.select("k").distinct().collect())
        _check(files, "no .parquet files were written")
        _check(count == N, f"read back {count} rows, wrote {N}")
        _check(total == sum(i * 0.5 for i in range(N)), f"sum of half read back as {total}")
        _check(keys == list(range(5)), f"partition keys read back as {keys}")
        return {"rows": count, "sum_half": total, "partitions": len(keys)}
    finally:
        shutil.rmtree(target, ignore_errors=True)


def classpath(spark):
    """The image's JARs: one version of each artifact, and hadoop-aws at exactly the Hadoop client's version."""
    folder = os.path.join(os.environ["SPARK_HOME"], "jars")
    found = collections.defaultdict(dict)  # artifact -> version -> a file of it
    for name in sorted(os.listdir(folder)):
        if name.endswith(".jar"):
            artifact, version = jar_name(name)
            found[artifact].setdefault(version, os.path.join(folder, name))
    twice = {a: sorted(v) for a, v in found.items()
             if len(v) > 1 and len({_group_id(path, a) for path in v.values()}) == 1}
    _check(not twice, f"two versions of one artifact on the classpath: {twice}")
    hadoop, aws = set(found.get("hadoop-client-api", {})), set(found.get("hadoop-aws", {}))
    _check(hadoop, "no hadoop-client-api JAR in $SPARK_HOME/jars")
    _check(aws == hadoop, f"hadoop-aws {sorted(aws) or 'missing'} is not at the Hadoop client's version {sorted(hadoop)}")
    return {"artifacts": len(found), "hadoop": min(hadoop)}


def jar_name(name):
    """`artifact-1.2.3[-classifier].jar` -> ("artifact", "1.2.3"). The version starts at the last `-` before a
    dotted number (`hive-shims-0.23-2.3.9` is hive-shims-0.23 at 2.3.9, `zstd-jni-1.5.5-4` is zstd-jni at 1.5.5),
    and what follows it after a `-` is a build number or classifier, not the version."""
    stem = name[: -len(".jar")]
    cuts = [i for i, char in enumerate(stem[:-1]) if char == "-" and stem[i + 1].isdigit()]
    dotted = [i for i in cuts if "." in stem[i + 1:].split("-")[0]]
    if not cuts:
        return stem, ""
    cut = dotted[-1] if dotted else cuts[0]
    return stem[:cut], stem[cut + 1:].split("-")[0]


def _group_id(path, artifact):
    """The Maven group a JAR names for `artifact` in its pom.properties, if it carries one (jline 2 and 3 are
    two artifacts that share a file name)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as jar:
            for entry in jar.namelist():
                parts = entry.split("/")
                if len(parts) == 5 and parts[:2] == ["META-INF", "maven"] and parts[3] == artifact:
                    return parts[2]
    except (OSError, zipfile.BadZipFile):
        pass
    return None


def s3a_job(uri):
    """Write Parquet to S3 through S3A (the image's committer), read it back, compare, then remove it."""

    def run(spark):
        from pyspark.sql.functions import col

        sc = spark.sparkContext
        jvm = sc._jvm
        target = f"{uri.rstrip('/')}/{uuid.uuid4().hex}"
        root = jvm.org.apache.hadoop.fs.Path(target)
        fs = root.getFileSystem(sc._jsc.hadoopConfiguration())
        try:
            df = spark.range(0, N, numPartitions=2).select(
                col("id"), (col("id") % 7).alias("k"), (col("id") * 0.25).alias("quarter"))
            df.write.mode("overwrite").parquet(target + "/table")
            back = spark.read.parquet(target + "/table")
            rows = sorted((r["k"], r["n"], r["total"]) for r in back.groupBy("k").agg(
                {"id": "count", "quarter": "sum"}).withColumnRenamed("count(id)", "n")
                .withColumnRenamed("sum(quarter)", "total").collect())
            want = sorted((k, len(ids), sum(i * 0.25 for i in ids))
                          for k, ids in _group(range(N), lambda i: i % 7).items())
            _check(rows == want, f"read back {rows[:2]}..., wrote {want[:2]}...")
            success = jvm.org.apache.hadoop.fs.Path(target + "/table/_SUCCESS")
            stream = fs.open(success)
            try:
                marker = json.loads(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8") or "{}")
            finally:
                stream.close()
            committer = marker.get("committer")
            _check(committer in ("magic", "directory", "partitioned", "staging"),
                   f"_SUCCESS names no S3A committer ({committer!r}): the classic rename committer wrote it")
            return {"groups": [list(r) for r in rows], "committer": committer}
        finally:
            fs.delete(root, True)

    return run


def _group(items, key):
    out = collections.defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return out


def metrics(spark):
    """Scrape the driver's Prometheus endpoints while a Spark job runs; the host parses what was read."""
    sc = spark.sparkContext
    url = sc.uiWebUrl
    _check(url, "the Spark UI is off, so there is no metrics endpoint")
    running = threading.Event()

    def busy():
        running.set()
        sc.parallelize(range(200), 4).map(lambda x: time.sleep(0.02) or x).count()

    load = threading.Thread(target=busy, daemon=True)
    load.start()
    running.wait(30)
    texts = {}
    for path in ("/metrics/prometheus", "/metrics/executors/prometheus"):
        with urllib.request.urlopen(url.rstrip("/") + path, timeout=30) as response:
            texts[path] = response.read().decode("utf-8")
    load.join(60)
    _check(all(texts.values()), f"an empty scrape: {[p for p, t in texts.items() if not t]}")
    return {"scrapes": texts}


def json_logs(spark):
    """Log an error with an exception through log4j; the host reads the driver's output for JSON lines."""
    jvm = spark.sparkContext._jvm
    logger = jvm.org.apache.logging.log4j.LogManager.getLogger("moka.smoke")
    logger.error(JSON_PROBE, jvm.java.lang.IllegalStateException("moka-smoke probe exception"))
    return {"probe": JSON_PROBE, "app_id": os.environ.get("SPARK_APPLICATION_ID", "")}


def team_job(path):
    """A team's own smoke script, run as `__main__` in this application; its output is what gets judged.

    It shares the running SparkSession (its `getOrCreate()` returns it), so it costs no extra Spark start;
    it runs last because such scripts usually end with `spark.stop()`.
    """

    def run(spark):
        tee = _Tee(sys.stdout)
        argv, sys.argv = sys.argv, [path]
        try:
            with contextlib.redirect_stdout(tee):
                runpy.run_path(path, run_name="__main__")
        except SystemExit as exc:
            if exc.code not in (None, 0):
                raise RuntimeError(f"the team job exited with {exc.code}") from None
        finally:
            sys.argv = argv
        return {"output": tee.tail()}

    return run


class _Tee(io.TextIOBase):
    """Passes writes through and keeps the last lines."""

    def __init__(self, stream):
        self.stream, self.lines, self.partial = stream, collections.deque(maxlen=200), ""

    def write(self, text):
        self.stream.write(text)
        *done, self.partial = (self.partial + text).split("\n")
        self.lines.extend(done)
        return len(text)

    def flush(self):
        self.stream.flush()

    def tail(self):
        return [*self.lines, self.partial] if self.partial else list(self.lines)


JOBS = {"entrypoint": entrypoint, "dataframe_sql": dataframe_sql, "python_udf": python_udf, "parquet": parquet,
        "classpath": classpath, "metrics": metrics, "json_logs": json_logs}
# Jobs that take a parameter after `@`: a team's script path, an S3 URI.
PARAMETER_JOBS = {"team": team_job, "s3a": s3a_job}


class CheckFailed(Exception):
    """The job ran but its answer is wrong."""


def _check(ok, message):
    if not ok:
        raise CheckFailed(message)


def _emit(record):
    sys.stdout.write("MOKA_RESULT " + json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()


def run_one(spark, name, limit, info, job, reaper=None):
    """Run one job within `limit` seconds and report it; a hang is cut off without ending the suite.

    An attempt that failed because `reaper` killed a stuck fork (an emulator deadlock, not the image's fault) is
    retried within what is left of the limit, at most twice; the record's info counts the retries.
    """
    start = time.monotonic()
    deadline = start + limit
    retries = 0
    while True:
        killed = reaper.killed if reaper else 0
        record = _attempt(spark, name, max(deadline - time.monotonic(), 0.0), job)
        if (record["status"] in ("passed", "timed-out") or reaper is None or reaper.killed == killed
                or retries == 2 or time.monotonic() >= deadline):
            break
        retries += 1
        sys.stderr.write(f"--- {name}: attempt {retries} met a stuck fork ({record['error']}); retrying\n")
    if record["status"] == "timed-out":
        record["error"] = f"no answer after {limit:g}s; its Spark jobs were cancelled"
    record.update(job=name, seconds=round(record.pop("ended") - start, 2),
                  info={**info, **({"retries_after_stuck_fork": retries} if retries else {})})
    _emit(record)
    return record["status"] == "passed"


def _attempt(spark, name, limit, job):
    """One run of `job` in a thread, so that a hang can be cut off at `limit` seconds: status, error, value and
    when it ended."""
    outcome = {}

    def target():
        # Job groups are thread-local with pinned threads (the default), so set it in the job's own thread.
        spark.sparkContext.setJobGroup(name, f"moka smoke {name}", interruptOnCancel=True)
        try:
            outcome["value"] = job(spark)
        except CheckFailed as exc:
            outcome["failed"] = str(exc)
        except BaseException as exc:  # noqa: BLE001 - every error is reported as this job's error
            outcome["error"] = f"{type(exc).__name__}: {exc}".strip()[:2000]
            traceback.print_exc()

    worker = threading.Thread(target=target, name=name, daemon=True)
    worker.start()
    worker.join(limit)
    record = {"value": outcome.get("value"), "ended": time.monotonic()}  # a hang counts until it was cut off
    if worker.is_alive():
        _dump_threads(spark, worker)
        spark.sparkContext.cancelJobGroup(name)
        worker.join(10)
        record.update(status="timed-out", error="no answer in time")
    elif "failed" in outcome:
        record.update(status="failed", error=outcome["failed"])
    elif "error" in outcome:
        record.update(status="error", error=outcome["error"])
    else:
        record.update(status="passed", error=None)
    return record


class StuckForkReaper(threading.Thread):
    """Kills a child of the JVM that was forked but has not run its program (exec) after `after` seconds.

    Under qemu-user (an emulated arch), a fork of the many-threaded JVM now and then deadlocks inside the
    emulator before its exec, and Hadoop forks `chmod` for every local file it writes: a Parquet write then waits
    forever. Such a child is a copy of the JVM (same command line, the JVM its parent); killing it makes the
    JVM's call fail instead of hang, and `killed` tells the job loop to retry. A native run never has one.
    """

    def __init__(self, jvm_pid, after=15.0, every=2.0, proc="/proc"):
        super().__init__(name="moka-stuck-fork-reaper", daemon=True)
        self.jvm_pid, self.after, self.every, self.proc = jvm_pid, after, every, proc
        self.killed = 0
        self._first_seen = {}

    def stuck_children(self, now):
        """Pids of the JVM's children that have looked like the JVM itself for `after` seconds by `now`."""
        jvm_cmdline = _read_bytes(f"{self.proc}/{self.jvm_pid}/cmdline")
        if not jvm_cmdline:
            return []
        seen, stuck = {}, []
        for entry in os.listdir(self.proc):
            stat = _read_bytes(f"{self.proc}/{entry}/stat") if entry.isdigit() else b""
            fields = stat.rsplit(b")", 1)[-1].split()
            if len(fields) < 2 or fields[1] != str(self.jvm_pid).encode():
                continue
            if _read_bytes(f"{self.proc}/{entry}/cmdline") != jvm_cmdline:
                continue
            pid = int(entry)
            seen[pid] = self._first_seen.get(pid, now)
            if now - seen[pid] >= self.after:
                stuck.append(pid)
        self._first_seen = seen
        return stuck

    def run(self):
        while True:
            for pid in self.stuck_children(time.monotonic()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    continue
                self.killed += 1
                sys.stderr.write(f"--- killed {pid}: a fork of the JVM stuck before exec for {self.after:g}s "
                                 "(an emulator deadlock)\n")
                sys.stderr.flush()
            time.sleep(self.every)


def _read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _dump_threads(spark, worker):
    """Where a hung job is stuck: its Python stack and the JVM's busy threads, to stderr (the log tail)."""
    frame = sys._current_frames().get(worker.ident)
    if frame is not None:
        sys.stderr.write(f"--- Python stack of hung job {worker.name}:\n" + "".join(traceback.format_stack(frame)))
    try:
        traces = spark.sparkContext._jvm.java.lang.Thread.getAllStackTraces()
        for entry in traces.entrySet().toArray():
            thread, frames = entry.getKey(), entry.getValue()
            if str(thread.getState().toString()) in ("RUNNABLE", "BLOCKED") or "task launch" in thread.getName():
                top = "".join(f"    at {f.toString()}\n" for f in list(frames)[:12])
                sys.stderr.write(f"--- JVM thread {thread.getName()} ({thread.getState().toString()}):\n{top}")
    except Exception as exc:  # noqa: BLE001 - a diagnostic must not hide the time-out itself
        sys.stderr.write(f"--- no JVM thread dump: {exc}\n")
    sys.stderr.flush()


def parse_plan(argv):
    """`NAME=SECONDS` for a built-in job; `team=SECONDS@/path/to/script.py` for a team's script and
    `s3a=SECONDS@s3a://bucket/prefix` for the S3 round trip."""
    plan = []
    for arg in argv:
        name, _, rest = arg.partition("=")
        limit, _, path = rest.partition("@")
        if path and name in PARAMETER_JOBS:
            plan.append((name, float(limit), PARAMETER_JOBS[name](path)))
        elif name in JOBS:
            plan.append((name, float(limit), JOBS[name]))
        else:
            sys.exit(f"unknown smoke job: {name}")
    return plan


def main(argv):
    from pyspark.sql import SparkSession

    plan = parse_plan(argv)
    spark = SparkSession.builder.appName("moka-smoke-pyspark").getOrCreate()
    info = {"spark": spark.version, "python": sys.version.split()[0], "arch": os.uname().machine}
    # The JVM (spark-submit's PythonRunner) started this interpreter.
    reaper = StuckForkReaper(os.getppid())
    reaper.start()
    ok = True
    for name, limit, job in plan:
        ok = run_one(spark, name, limit, info, job, reaper) and ok
    spark.stop()
    sys.stdout.flush()
    # A job thread stuck in plain Python would keep the interpreter alive; its result is already reported.
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
