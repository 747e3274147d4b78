#!/bin/bash
# Entrypoint for Spark on Kubernetes (the `driver` and `executor` commands that Spark's K8s backend passes,
# modelled on Spark's own kubernetes/dockerfiles entrypoint) and for anything else, e.g. plain spark-submit.
set -eo pipefail

if ! getent passwd "$(id -u)" >/dev/null 2>&1; then
  # Kubernetes may run us under an arbitrary uid; the JVM wants a home and a user name.
  export HOME=/opt/spark/work-dir USER=spark
fi

# The image's own configuration (log4j2.properties, metrics.properties, spark-defaults.conf) lives in
# $SPARK_HOME/conf. On Kubernetes, SPARK_CONF_DIR is the pod's config map: it stays first on the classpath (a
# file there wins) and ours follows, so JSON logs and the metrics sink hold unless the pod replaces them.
IMAGE_CONF_DIR="${SPARK_HOME}/conf"
CONF_CLASSPATH="$IMAGE_CONF_DIR"
if [ -n "${SPARK_CONF_DIR:-}" ] && [ "$SPARK_CONF_DIR" != "$IMAGE_CONF_DIR" ]; then
  CONF_CLASSPATH="$SPARK_CONF_DIR:$IMAGE_CONF_DIR"
  export SPARK_DIST_CLASSPATH="$IMAGE_CONF_DIR${SPARK_DIST_CLASSPATH:+:$SPARK_DIST_CLASSPATH}"
fi
SPARK_CLASSPATH="$CONF_CLASSPATH:${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}${SPARK_HOME}/jars/*"
mapfile -t SPARK_EXECUTOR_JAVA_OPTS < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/[^=]*=\(.*\)/\1/')

if [ -n "${PYSPARK_PYTHON:-}" ]; then export PYSPARK_PYTHON; fi
if [ -n "${SPARK_EXTRA_CLASSPATH:-}" ]; then SPARK_CLASSPATH="$SPARK_CLASSPATH:$SPARK_EXTRA_CLASSPATH"; fi

case "${1:-}" in
  driver)
    shift
    # spark-submit reads no spark-defaults.conf when given --properties-file, as every driver pod is: the
    # image's defaults go first in a merged copy, so that the pod's own properties still win. The driver's
    # app id (spark.app.id, set by Spark on Kubernetes) names its log lines as the executors' do.
    DRIVER_ARGS=()
    while [ $# -gt 0 ]; do
      if [ "$1" = --properties-file ] && [ $# -ge 2 ]; then
        merged="$(mktemp "${TMPDIR:-/tmp}/spark-properties.XXXXXX")"
        { cat "$IMAGE_CONF_DIR/spark-defaults.conf"; echo; cat "$2"; } > "$merged"
        if [ -z "${SPARK_APPLICATION_ID:-}" ]; then
          SPARK_APPLICATION_ID="$(sed -n 's/^spark\.app\.id[ =:]*//p' "$2" | tail -n1)"
          if [ -n "$SPARK_APPLICATION_ID" ]; then export SPARK_APPLICATION_ID; fi
        fi
        DRIVER_ARGS+=(--properties-file "$merged")
        shift 2
      else
        DRIVER_ARGS+=("$1")
        shift
      fi
    done
    set -- "${DRIVER_ARGS[@]}"
    CMD=("$SPARK_HOME/bin/spark-submit"
         --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}"
         --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}"
         --deploy-mode client
         "$@")
    ;;
  executor)
    shift
    CMD=("${JAVA_HOME}/bin/java" "${SPARK_EXECUTOR_JAVA_OPTS[@]}"
         "-Xms${SPARK_EXECUTOR_MEMORY:-1g}" "-Xmx${SPARK_EXECUTOR_MEMORY:-1g}"
         -cp "$SPARK_CLASSPATH"
         org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
         --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID"
         --cores "$SPARK_EXECUTOR_CORES" --app-id "$SPARK_APPLICATION_ID"
         --hostname "$SPARK_EXECUTOR_POD_IP" --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}"
         --podName "${SPARK_EXECUTOR_POD_NAME:-}")
    ;;
  "")
    CMD=("$SPARK_HOME/bin/spark-submit" --version)
    ;;
  *)
    CMD=("$@")
    ;;
esac

# As PID 1 tini reaps zombies by itself; elsewhere it must register as subreaper (-s), which qemu-user lacks.
if [ $$ -eq 1 ]; then
  exec /usr/bin/tini -- "${CMD[@]}"
fi
exec /usr/bin/tini -s -- "${CMD[@]}"
