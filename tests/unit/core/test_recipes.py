from moka_images.recipes import team


def test_team_dockerfile_quotes_env_and_orders_steps() -> None:
    text = team.render(apt_packages=["jq=1.6-2.1"], has_wheels=True, has_files=True, has_smoke=True,
                       env={"B": "two words", "A": "x=1"})
    lines = text.splitlines()
    assert lines[:3] == ["ARG BASE", "FROM ${BASE}", "USER root"]
    assert 'ENV A="x=1"' in lines and 'ENV B="two words"' in lines
    assert lines.index('ENV A="x=1"') < lines.index('ENV B="two words"')
    assert lines[-1] == "USER 185"
    assert "jq=1.6-2.1" in text and "--require-hashes" in text and team.SMOKE_PATH in text


def test_team_dockerfile_without_optional_parts() -> None:
    text = team.render(apt_packages=[], has_wheels=False, has_files=False, has_smoke=False, env={})
    assert "apt-get" not in text and "wheels" not in text and "COPY" not in text


def test_recipe_hash_is_stable() -> None:
    assert team.recipe_hash() == team.recipe_hash()
    assert len(team.recipe_hash()) == 64
