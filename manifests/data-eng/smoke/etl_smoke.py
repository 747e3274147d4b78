"""Smoke job for data-eng/etl-jobs: config from the image, pinned packages, a small aggregation in Spark, and an
Avro round trip through spark-avro (a JVM package the manifest declares)."""

import os
import shutil
import tempfile

import yaml
from pyspark.sql import SparkSession, functions as F
from tabulate import tabulate

with open(os.environ["ETL_CONFIG"], encoding="utf-8") as handle:
    config = yaml.safe_load(handle)
assert shutil.which("tree"), "tree (apt pin) is missing"

spark = SparkSession.builder.appName("etl-smoke").getOrCreate()
sales = spark.createDataFrame(
    [(region, amount) for region in config["regions"] for amount in (50, 150)],
    "region string, amount int",
)
per_region = sales.groupBy("region").agg(F.sum("amount").alias("total")).orderBy("region").collect()
print(tabulate([(r["region"], r["total"]) for r in per_region], headers=["region", config["currency"]]))
avro_dir = os.path.join(tempfile.mkdtemp(prefix="etl-smoke-"), "sales.avro")
sales.write.format("avro").save(avro_dir)
back = spark.read.format("avro").load(avro_dir)
assert sorted(back.collect()) == sorted(sales.collect()), "the Avro round trip changed the rows"
print(f"etl-smoke ok: regions={len(per_region)} total={sum(r['total'] for r in per_region)} avro={back.count()}")
spark.stop()
