"""trivy's databases, written locally: a bbolt writer, the vulnerability DB and the Java DB."""
