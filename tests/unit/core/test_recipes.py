from moka_images.recipes import team


def test_team_dockerfile_quotes_env_and_orders_steps() -> None:
    text = team.render(apt_packages=["jq=1.6-2.1"], has_wheels=True, has_jars=False, has_files=True, has_smoke=True,
                       env={"B": "two words", "A": "x=1"})
    lines = text.splitlines()
    assert lines[:3] == ["ARG BASE", "FROM ${BASE}", "USER root"]
    assert 'ENV A="x=1"' in lines and 'ENV B="two words"' in lines
    assert lines.index('ENV A="x=1"') < lines.index('ENV B="two words"')
    assert lines[-1] == "USER 185"
    assert "jq=1.6-2.1" in text and "--require-hashes" in text and team.SMOKE_PATH in text


def test_team_dockerfile_without_optional_parts() -> None:
    text = team.render(apt_packages=[], has_wheels=False, has_jars=False, has_files=False, has_smoke=False, env={})
    assert "apt-get" not in text and "wheels" not in text and "COPY" not in text


def test_team_jars_join_spark_s_own_owned_by_root_after_the_wheels_and_before_the_app() -> None:
    text = team.render(apt_packages=[], has_wheels=True, has_jars=True, has_files=True, has_smoke=False, env={})
    lines = text.splitlines()
    copy = "COPY --chown=0:0 jars/ /opt/python/lib/python3.11/site-packages/pyspark/jars/"
    assert lines.count(copy) == 1
    assert lines.index("COPY wheels/ /tmp/wheels/") < lines.index(copy) < lines.index("COPY --chown=185:185 app/ /opt/app/")


def test_recipe_hash_is_stable_and_sees_the_jars_step() -> None:
    assert team.recipe_hash(has_jars=False) == team.recipe_hash(has_jars=False)
    assert len(team.recipe_hash(has_jars=False)) == 64
    assert team.recipe_hash(has_jars=True) != team.recipe_hash(has_jars=False)


def test_recipe_hash_without_jars_is_the_one_from_before_jars() -> None:
    """Images without JVM packages keep their keys: no version bump for a step they do not use."""
    assert team.recipe_hash(has_jars=False) == "99fa7712abb2f6f44c1b9fb9bf16a25e38e31184d611d07684bc7a652cb6704b"
