"""Settings, manifests and policies: typed models with strict validation."""
