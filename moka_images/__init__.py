"""moka-images: build, scan, sign and promote multi-arch Spark images."""
