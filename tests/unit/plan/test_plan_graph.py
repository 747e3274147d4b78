"""The build plan: tags, keys, graph order and every kind of decision, on made-up inventories."""

from __future__ import annotations

import pytest
from rich.console import Console

from moka_images.commands.views import plan_table
from moka_images.errors import ConfigError
from moka_images.models import Digest, InputFile
from moka_images.plan.graph import (
    Action,
    BuildTag,
    Graph,
    Node,
    Plan,
    make_plan,
    own_key,
    rolling_tags,
    select,
    since,
)

OS = Digest("sha256:" + "a" * 64)
OS_NEW = Digest("sha256:" + "b" * 64)
D35 = Digest("sha256:" + "c" * 64)  # spark-3.5's index digest, as built earlier
D40 = Digest("sha256:" + "d" * 64)
D35_NEW = Digest("sha256:" + "e" * 64)
K35, K40, KETL, KFEAT = "1" * 64, "2" * 64, "3" * 64, "4" * 64
ETL_SOURCE = "manifests/data-eng/etl-jobs.yaml"


def graph(**changes: tuple[str, str]) -> Graph:
    """spark-3.5 <- data-eng/etl-jobs and spark-4.0 <- ml-platform/feature-store; changes: name=(version, key)."""
    spec = {
        "spark-3.5": ("1.0.0", K35, None, "images/spark/image.yaml", ("images/spark",)),
        "spark-4.0": ("1.0.0", K40, None, "images/spark/image.yaml", ("images/spark",)),
        "data-eng/etl-jobs": ("1.0.0", KETL, "spark-3.5", ETL_SOURCE, (ETL_SOURCE, "manifests/data-eng/etl")),
        "ml-platform/feature-store": ("1.0.0", KFEAT, "spark-4.0", "manifests/ml-platform/feature-store.yaml",
                                      ("manifests/ml-platform/feature-store.yaml",)),
    }
    nodes = []
    for name, (version, key, base, source, paths) in spec.items():
        version, key = changes.get(name.replace("/", "_").replace("-", "_").replace(".", "_"), (version, key))
        nodes.append(Node(name, version, key, base, source, paths))
    return Graph(nodes)


def tag(version: str, key: str, base: Digest) -> str:
    return str(BuildTag.make(version, key, base))


BUILT = {  # everything built once, on OS
    "spark-3.5": [tag("1.0.0", K35, OS), "1.0.0", "1.0", "latest"],
    "spark-4.0": [tag("1.0.0", K40, OS)],
    "data-eng/etl-jobs": [tag("1.0.0", KETL, D35), "latest", "sha256-" + "f" * 64 + ".sig"],
    "ml-platform/feature-store": [tag("1.0.0", KFEAT, D40)],
}
DIGESTS = {"spark-3.5": D35, "spark-4.0": D40}


def settled(plan: Plan, digests: dict[str, Digest]) -> Plan:
    """What the CLI does with skipped bases: resolve their tags (here: a dict) and settle."""
    while todo := plan.to_resolve():
        for image, _tag in todo:
            plan = plan.settle(image, digests[image])
    return plan


def actions(plan: Plan) -> dict[str, str]:
    return {d.image: d.action.value for d in plan.decisions}


# --- tags and keys -----------------------------------------------------------------------------------------
def test_build_tag_format_and_parse() -> None:
    made = BuildTag.make("1.2.3-rc.1", "ab" * 32, OS)
    assert str(made) == "1.2.3-rc.1-ababababab-aaaaaaaaaa"
    assert BuildTag.parse(str(made)) == made


@pytest.mark.parametrize("other", ["latest", "1.0", "1.0.0", "sha256-" + "a" * 64 + ".sig",
                                   "1.0.0-abcdefabcd", "1.0-abcdefabcd-abcdefabcd", "1.0.0-ABCDEFABCD-abcdefabcd",
                                   "1.0.0-abcdefabcd-abcdefabcd\n"])
def test_other_tags_are_not_build_tags(other: str) -> None:
    assert BuildTag.parse(other) is None


def test_rolling_tags() -> None:
    assert rolling_tags("1.4.2") == ["1.4.2", "1.4", "latest"]
    assert rolling_tags("2.0.0-rc.1") == ["2.0.0-rc.1"]


def test_own_key_sees_declaration_files_exec_bit_and_recipe_not_file_order() -> None:
    files = [InputFile("a", "0" * 64), InputFile("b", "1" * 64)]
    key = own_key({"name": "x"}, files, "r1")
    assert len(key) == 64 and key == own_key({"name": "x"}, list(reversed(files)), "r1")
    assert key != own_key({"name": "y"}, files, "r1")
    assert key != own_key({"name": "x"}, [files[0], InputFile("b", "2" * 64)], "r1")
    assert key != own_key({"name": "x"}, [files[0], InputFile("b", "1" * 64, executable=True)], "r1")
    assert key != own_key({"name": "x"}, files, "r2")


# --- the graph -----------------------------------------------------------------------------------------------
def test_graph_is_ordered_bases_first() -> None:
    assert graph().names == ["spark-3.5", "spark-4.0", "data-eng/etl-jobs", "ml-platform/feature-store"]
    assert graph().dependents(["spark-3.5"]) == {"data-eng/etl-jobs"}
    assert graph().ancestors("data-eng/etl-jobs") == ["spark-3.5"]


@pytest.mark.parametrize(("nodes", "message"), [
    ([Node("a", "1.0.0", K35, "b", "x"), Node("b", "1.0.0", K35, "a", "y")], "cycle: a, b"),
    ([Node("a", "1.0.0", K35, "nope", "x")], "unknown image `nope`"),
    ([Node("a", "1.0.0", K35, None, "x"), Node("a", "1.0.0", K40, None, "y")], "declared twice"),
])
def test_bad_graphs(nodes: list[Node], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Graph(nodes)


# --- decisions -----------------------------------------------------------------------------------------------
def test_empty_registry_builds_everything_bases_first() -> None:
    plan = make_plan(graph(), OS, {})
    assert actions(plan) == dict.fromkeys(graph().names, "build")
    spark = plan.decision("spark-3.5")
    assert (spark.reason, spark.tag, spark.pending) == ("first build", tag("1.0.0", K35, OS), False)
    etl = plan.decision("data-eng/etl-jobs")
    assert etl.pending and etl.tag is None
    assert etl.reason == "first build; base spark-3.5 rebuilds in this plan"
    assert plan.to_resolve() == []


def test_built_dependent_gets_its_tag_once_the_base_is_built() -> None:
    plan = make_plan(graph(), OS, {}).settle("spark-3.5", D35)
    etl = plan.decision("data-eng/etl-jobs")
    assert (etl.action, etl.pending, etl.tag) == (Action.BUILD, False, tag("1.0.0", KETL, D35))
    assert etl.reason == "first build"
    assert plan.decision("ml-platform/feature-store").pending


def test_nothing_changed_skips_everything() -> None:
    plan = make_plan(graph(), OS, BUILT)
    assert plan.decision("data-eng/etl-jobs").reason == "waits for the digest of spark-3.5"
    assert plan.to_resolve() == [("spark-3.5", tag("1.0.0", K35, OS)), ("spark-4.0", tag("1.0.0", K40, OS))]
    plan = settled(plan, DIGESTS)
    assert actions(plan) == dict.fromkeys(graph().names, "skip")
    assert plan.decision("data-eng/etl-jobs").reason == f"up to date as {tag('1.0.0', KETL, D35)}"
    assert plan.to_resolve() == []


def test_changed_inputs_without_a_version_bump_are_refused() -> None:
    plan = settled(make_plan(graph(data_eng_etl_jobs=("1.0.0", "9" * 64)), OS, BUILT), DIGESTS)
    etl = plan.decision("data-eng/etl-jobs")
    assert etl.action is Action.REFUSE and etl.tag is None
    assert etl.reason == ("inputs changed but version 1.0.0 was already built from other inputs: "
                          f"bump `version` in {ETL_SOURCE}")
    assert actions(plan)["ml-platform/feature-store"] == "skip"


def test_refusal_does_not_wait_for_the_base() -> None:
    plan = make_plan(graph(data_eng_etl_jobs=("1.0.0", "9" * 64)), OS_NEW, BUILT)
    assert plan.decision("spark-3.5").action is Action.BUILD
    assert plan.decision("data-eng/etl-jobs").action is Action.REFUSE


def test_changed_inputs_with_a_bump_build_only_that_image() -> None:
    plan = settled(make_plan(graph(data_eng_etl_jobs=("1.1.0", "9" * 64)), OS, BUILT), DIGESTS)
    assert actions(plan) == {"spark-3.5": "skip", "spark-4.0": "skip", "data-eng/etl-jobs": "build",
                             "ml-platform/feature-store": "skip"}
    etl = plan.decision("data-eng/etl-jobs")
    assert etl.reason == "new version 1.1.0 (newest built: 1.0.0)"
    assert etl.tag == tag("1.1.0", "9" * 64, D35)
    assert etl.to_json()["rolling_tags"] == ["1.1.0", "1.1", "latest"]


def test_lowering_a_version_is_refused() -> None:
    inventory = {**BUILT, "data-eng/etl-jobs": [tag("1.0.0", KETL, D35), tag("1.2.0", "8" * 64, D35)]}
    plan = settled(make_plan(graph(data_eng_etl_jobs=("1.1.0", "9" * 64)), OS, inventory), DIGESTS)
    etl = plan.decision("data-eng/etl-jobs")
    assert etl.action is Action.REFUSE
    assert etl.reason.startswith("version 1.1.0 is lower than 1.2.0, which was already built")
    assert f"set `version` above 1.2.0 in {ETL_SOURCE}" in etl.reason


def test_going_back_even_to_an_exact_earlier_build_is_refused() -> None:
    inventory = {**BUILT, "data-eng/etl-jobs": [tag("1.0.0", KETL, D35), tag("1.2.0", "8" * 64, D35)]}
    for plan in (make_plan(graph(), OS, inventory), make_plan(graph(), OS, inventory, digests=DIGESTS)):
        assert plan.decision("data-eng/etl-jobs").action is Action.REFUSE


def test_a_new_os_base_rebuilds_everything_and_keeps_versions() -> None:
    plan = make_plan(graph(), OS_NEW, BUILT)
    assert actions(plan) == dict.fromkeys(graph().names, "build")
    spark = plan.decision("spark-3.5")
    assert spark.reason == "base os-base changed: sha256:aaaaaaaaaa… -> sha256:bbbbbbbbbb…"
    assert spark.version == "1.0.0" and spark.tag == tag("1.0.0", K35, OS_NEW)
    etl = plan.decision("data-eng/etl-jobs")
    assert etl.pending and etl.reason == "base spark-3.5 rebuilds in this plan"
    etl = plan.settle("spark-3.5", D35_NEW).decision("data-eng/etl-jobs")
    assert etl.reason == "base spark-3.5 changed: sha256:cccccccccc… -> sha256:eeeeeeeeee…"
    assert (etl.action, etl.version, etl.tag) == (Action.BUILD, "1.0.0", tag("1.0.0", KETL, D35_NEW))


def test_a_rebuilt_base_with_the_same_digest_leaves_dependents_alone() -> None:
    plan = make_plan(graph(), OS_NEW, BUILT).settle("spark-3.5", D35)
    assert plan.decision("data-eng/etl-jobs").action is Action.SKIP


def test_a_bumped_base_rebuilds_its_dependents_only() -> None:
    plan = make_plan(graph(spark_3_5=("1.1.0", "7" * 64)), OS, BUILT)
    plan = settled(plan, DIGESTS).settle("spark-3.5", D35_NEW)
    assert actions(plan) == {"spark-3.5": "build", "spark-4.0": "skip", "data-eng/etl-jobs": "build",
                             "ml-platform/feature-store": "skip"}
    assert plan.decision("spark-3.5").reason == "new version 1.1.0 (newest built: 1.0.0)"


def test_dependents_of_a_refused_base_are_refused() -> None:
    plan = make_plan(graph(spark_3_5=("1.0.0", "7" * 64)), OS, BUILT)
    assert plan.decision("spark-3.5").action is Action.REFUSE
    etl = plan.decision("data-eng/etl-jobs")
    assert (etl.action, etl.reason) == (Action.REFUSE, "its base spark-3.5 is refused")


# --- scopes: --since and IMAGE... ----------------------------------------------------------------------------
@pytest.mark.parametrize(("changed", "touched"), [
    (["manifests/data-eng/etl-jobs.yaml"], {"data-eng/etl-jobs"}),
    (["manifests/data-eng/etl/config.yaml"], {"data-eng/etl-jobs"}),
    (["./images/spark/Dockerfile"], set(graph().names)),
    (["images/sparkle/Dockerfile", "manifests/data-eng/etl-jobs.yaml.orig", "README.md"], set()),
    ([], set()),
])
def test_since_touches_images_and_their_dependents(changed: list[str], touched: set[str]) -> None:
    scope = since(graph(), changed, "HEAD~1")
    assert scope.images == touched and scope.reason == "unchanged since HEAD~1"


def test_since_skips_untouched_images_even_if_they_would_build() -> None:
    scope = since(graph(), ["manifests/ml-platform/feature-store.yaml"], "abc123")
    plan = make_plan(graph(), OS_NEW, BUILT, scopes=[scope])
    assert actions(plan)["data-eng/etl-jobs"] == "skip"
    assert plan.decision("data-eng/etl-jobs").reason == "unchanged since abc123"
    feature_base = plan.decision("spark-4.0")
    assert feature_base.action is Action.BUILD
    assert feature_base.reason.endswith("(needed by ml-platform/feature-store)")
    assert plan.decision("spark-3.5").reason == "unchanged since abc123"


def test_since_reuses_an_up_to_date_base_for_a_touched_image() -> None:
    scope = since(graph(), ["manifests/data-eng/etl/config.yaml"], "abc123")
    plan = settled(make_plan(graph(data_eng_etl_jobs=("1.0.1", "9" * 64)), OS, BUILT, scopes=[scope]), DIGESTS)
    assert actions(plan) == {"spark-3.5": "skip", "spark-4.0": "skip", "data-eng/etl-jobs": "build",
                             "ml-platform/feature-store": "skip"}
    assert plan.decision("spark-3.5").reason.startswith("up to date as")
    assert plan.decision("data-eng/etl-jobs").tag == tag("1.0.1", "9" * 64, D35)


def test_select_names_images_with_did_you_mean() -> None:
    with pytest.raises(ConfigError, match="no image called `data-eng/etl-job`") as caught:
        select(graph(), ["data-eng/etl-job"])
    assert caught.value.hint == "did you mean `data-eng/etl-jobs`?"
    plan = make_plan(graph(), OS, {}, scopes=[select(graph(), ["spark-4.0"])])
    assert actions(plan) == {"spark-3.5": "skip", "spark-4.0": "build", "data-eng/etl-jobs": "skip",
                             "ml-platform/feature-store": "skip"}
    assert plan.decision("ml-platform/feature-store").reason == "not selected"


# --- output ----------------------------------------------------------------------------------------------------
def test_json_and_table_carry_every_decision_and_reason() -> None:
    plan = make_plan(graph(data_eng_etl_jobs=("1.0.0", "9" * 64)), OS, BUILT)
    doc = plan.to_json()
    assert doc["os_base"] == str(OS)
    assert doc["summary"] == {"build": 1, "skip": 2, "refuse": 1}
    assert [i["image"] for i in doc["images"]] == graph().names
    first = doc["images"][0]
    assert set(first) == {"image", "action", "reason", "version", "own_key", "base", "base_digest", "tag",
                          "pending", "rolling_tags"}
    console = Console(record=True, width=250)
    console.print(plan_table(plan))
    text = console.export_text()
    for d in plan.decisions:
        assert d.image in text and d.reason.split(":")[0] in text
    assert "REFUSE" in text and "(after its base)" in text


def test_only_named_images_are_selected_not_the_bases_they_need() -> None:
    g = graph()
    plan = make_plan(g, OS, {}, scopes=[select(g, ["data-eng/etl-jobs"])])
    selected = {d.image for d in plan.decisions if d.selected}
    assert selected == {"data-eng/etl-jobs"}
    base = plan.decision("spark-3.5")
    assert base.action is Action.BUILD and not base.selected and "needed by data-eng/etl-jobs" in base.reason
