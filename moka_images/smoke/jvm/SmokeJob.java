package moka.smoke;

import java.util.ArrayList;
import java.util.List;

import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * The JVM smoke job: an RDD reduction and a Dataset aggregation through the Java API only, so that one
 * source compiles against both Scala 2.12 (Spark 3.5) and Scala 2.13 (Spark 4.0). It checks its own answer
 * and prints one machine-readable result line; a wrong answer exits non-zero.
 */
public final class SmokeJob {
    private static final long N = 20_000L;

    private SmokeJob() {
    }

    public static void main(String[] args) {
        SparkSession spark = SparkSession.builder().appName("moka-smoke-jvm").getOrCreate();
        int code = 0;
        try {
            JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            List<Long> numbers = new ArrayList<>();
            for (long i = 1; i <= N; i++) {
                numbers.add(i);
            }
            JavaRDD<Long> rdd = jsc.parallelize(numbers, 4);
            long sumOfSquares = rdd.map(x -> x * x).reduce(Long::sum);

            Dataset<Row> grouped = spark.range(1, N + 1).selectExpr("id % 7 AS k", "id")
                .groupBy("k").count().orderBy("k");
            List<Row> rows = grouped.collectAsList();
            StringBuilder counts = new StringBuilder();
            long total = 0;
            for (Row row : rows) {
                counts.append(counts.length() == 0 ? "" : ",").append(row.getLong(1));
                total += row.getLong(1);
            }

            long expectedSquares = N * (N + 1) * (2 * N + 1) / 6;
            boolean ok = sumOfSquares == expectedSquares && total == N && rows.size() == 7;
            String value = "{\"sum_of_squares\": " + sumOfSquares + ", \"group_counts\": [" + counts + "]}";
            String error = ok ? "null"
                : "\"expected sum_of_squares " + expectedSquares + " and " + N + " rows in 7 groups\"";
            System.out.println("MOKA_RESULT {\"job\": \"jvm\", \"status\": \"" + (ok ? "passed" : "failed")
                + "\", \"value\": " + value + ", \"error\": " + error + ", \"info\": {\"spark\": \""
                + spark.version() + "\", \"java\": \"" + System.getProperty("java.version") + "\", \"arch\": \""
                + System.getProperty("os.arch") + "\"}}");
            System.out.flush();
            code = ok ? 0 : 1;
        } finally {
            spark.stop();
        }
        System.exit(code);
    }
}
