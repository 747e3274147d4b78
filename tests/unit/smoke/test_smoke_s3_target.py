"""Where the S3A round trip writes and how the driver reaches it, from the profile's smoke_s3."""

from __future__ import annotations

from moka_images.config.settings import Settings, SmokeS3Settings, load_settings
from moka_images.stages.verify.smoke import s3_target


def with_s3(settings: Settings, **fields: object) -> Settings:
    return settings.model_copy(update={"smoke_s3": SmokeS3Settings.model_validate(fields)})


def test_the_local_stand_in_is_reached_on_the_hosts_loopback_with_any_keys() -> None:
    target = s3_target(load_settings(profile="local"))
    assert target is not None and target.uri == "s3a://moka-smoke/moka-smoke"
    conf = dict(target.conf)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:15080"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "us-east-1"
    assert dict(target.env) == {"AWS_ACCESS_KEY_ID": "mokalocal", "AWS_SECRET_ACCESS_KEY": "mokalocal"}
    assert target.host_network


def test_s3_itself_is_reached_with_the_drivers_own_role_and_network() -> None:
    target = s3_target(load_settings(profile="production"))
    assert target is not None and target.uri == "s3a://moka-smoke-111100001111/moka-smoke"
    assert target.conf == (("spark.hadoop.fs.s3a.endpoint.region", "eu-west-1"),)
    assert target.env == () and not target.host_network


def test_a_local_profile_with_its_bucket_on_s3_itself_gets_no_stand_in_keys() -> None:
    # Keys in the environment come first in the SDK's chain: the stand-in's would hide the real credentials.
    target = s3_target(with_s3(load_settings(profile="local"), bucket="real-bucket", prefix="/smoke/"))
    assert target is not None and target.uri == "s3a://real-bucket/smoke"
    assert target.env == () and not target.host_network
    assert "spark.hadoop.fs.s3a.endpoint" not in dict(target.conf)


def test_an_https_endpoint_elsewhere_keeps_ssl_and_the_containers_own_network() -> None:
    target = s3_target(with_s3(load_settings(profile="production"), bucket="team-bucket",
                               endpoint="https://s3.example.internal:9000"))
    assert target is not None and not target.host_network and target.env == ()
    assert dict(target.conf)["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "true"
    assert "spark.hadoop.fs.s3a.path.style.access" not in dict(target.conf)


def test_no_smoke_s3_means_no_target() -> None:
    assert s3_target(load_settings(profile="local").model_copy(update={"smoke_s3": None})) is None
