"""Smoke job for ml-platform/feature-store: shipped definitions, pinned packages, a feature in Spark."""

import os
import sys

import msgpack
from pyspark.sql import SparkSession, functions as F
from toolz import valmap

sys.path.insert(0, os.environ["FEATURE_DEFINITIONS_DIR"])
from definitions import FEATURES  # noqa: E402  (shipped in the image by the manifest's `files`)

spark = SparkSession.builder.appName("feature-smoke").getOrCreate()
events = spark.createDataFrame(
    [(f"u{i}", float(spend)) for i in range(4) for spend in (10, 40)],
    "user string, spend double",
)
exprs = [f"{sql} as {name}" for name, sql in sorted(FEATURES.items())]
rows = events.groupBy("user").agg(*[F.expr(e) for e in exprs])
features = {r["user"]: {"spend_mean": r["spend_mean"], "spend_max": r["spend_max"]} for r in rows.collect()}
packed = msgpack.unpackb(msgpack.packb(features))
means = valmap(lambda f: f["spend_mean"], packed)
namespace = os.environ["FEATURE_STORE_NAMESPACE"]
print(f"{namespace}: {len(means)} users, spark {spark.version}")
print(f"feature-smoke ok: users={len(means)} mean_spend={sum(means.values()) / len(means)}")
spark.stop()
