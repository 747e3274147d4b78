"""Feature definitions shared by the feature store jobs."""

FEATURES = {
    "spend_mean": "avg(spend)",
    "spend_max": "max(spend)",
}
