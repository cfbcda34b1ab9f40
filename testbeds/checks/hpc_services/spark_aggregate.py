"""A Spark application the check submits from the login node: per-key sums and counts over
the sample dataset. Prints one line starting with RESULT and a JSON object."""

import json
import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

spark = SparkSession.builder.appName("wp5-check-aggregate").getOrCreate()
began = time.monotonic()
frame = spark.read.parquet(sys.argv[1])
rows = frame.groupBy("key").agg(F.sum("value").alias("sum"), F.count("*").alias("count")).collect()
executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
result = {
    "per_key": {str(r["key"]): [int(r["sum"]), int(r["count"])] for r in rows},
    "compute_s": round(time.monotonic() - began, 1),
    "executors": executors,
}
spark.stop()
print("RESULT " + json.dumps(result))
