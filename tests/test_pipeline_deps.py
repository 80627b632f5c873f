"""dvc.yaml against the code: every stage's deps are exactly the sdnet modules it runs, the runs
are listed once, the runner sees the stages DVC sees, and a committed study's own pipeline file is
dvc.yaml at its profile."""


import ast

import pytest
import yaml

from helpers import ROOT
from sdnet.pipeline import declared_code, load_stages, own_pipeline, own_pipeline_path, own_pipelines, run, stage_code
from sdnet.provenance import _notebook_source, code_dependencies

STAGES = load_stages(ROOT)


@pytest.mark.parametrize("stage", STAGES, ids=lambda s: s.name)
def test_deps_are_exactly_the_modules_the_stage_imports(stage):
    needed, declared = stage_code(ROOT, stage), declared_code(ROOT, stage)
    assert needed, f"{stage.name}: its command runs no sdnet code? {stage.cmd}"
    assert needed == declared, (
        f"{stage.name}: missing from dvc.yaml {sorted(needed - declared)}; listed but never imported {sorted(declared - needed)} "
        "(`python -m sdnet.pipeline deps` prints the right list)"
    )


def test_every_stage_runs_a_stage_module_or_a_notebook():
    for stage in STAGES:
        assert stage.module or stage.notebook, stage.cmd
        if stage.module:
            assert stage.module.startswith("sdnet.stages."), stage.module
        else:
            assert (ROOT / stage.notebook).is_file()


def test_the_runs_are_written_once():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    trains = [s.name for s in STAGES if s.name.startswith("train@")]
    assert trains == [f"train@{run}" for run in params["runs"]]  # dvc.yaml's foreach reads params.yaml
    # the chapters that read every run's metrics depend on the folder, not on a list of files
    tabulate = next(s for s in STAGES if s.name == "tabulate_accuracy")
    assert "reports/quick/train" in tabulate.deps and not any(d.endswith(".json") for d in tabulate.deps)


def test_the_closure_follows_imports_inside_functions_and_packages(tmp_path):
    pkg = tmp_path / "sdnet"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from sdnet.sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import c\n")
    (pkg / "sub" / "b.py").write_text("import os\n")
    (pkg / "sub" / "c.py").write_text("from sdnet import d\n")
    (pkg / "d.py").write_text("")
    (pkg / "unused.py").write_text("")
    found = code_dependencies(tmp_path, modules=["sdnet.a"])
    assert found == {"sdnet/__init__.py", "sdnet/a.py", "sdnet/sub/__init__.py", "sdnet/sub/b.py", "sdnet/sub/c.py", "sdnet/d.py"}


def test_notebook_imports_count(tmp_path):
    for stage in STAGES:
        if stage.notebook:
            source = stage_code(ROOT, stage)
            assert "sdnet/study.py" in source, stage.name  # every chapter starts from the study object


def test_the_runner_runs_the_computing_stages_in_order(capsys):
    ran = run(ROOT, profile="fast", dry_run=True)
    names = [s.name for s in ran]
    assert names == [s.name for s in STAGES if s.name.startswith(("train@", "evaluate@"))] + ["sweep_noise", "attack"]
    out = capsys.readouterr().out
    assert "--profile fast" in out and "left for `dvc repro`" in out and "tabulate_noise" in out and "summarize" in out
    assert [s.name for s in run(ROOT, only=["train"], dry_run=True)] == [s.name for s in STAGES if s.name.startswith("train@")]
    with pytest.raises(SystemExit, match="no stage"):
        run(ROOT, only=["trian"], dry_run=True)


def test_training_depends_only_on_the_code_that_decides_the_weights():
    """A network's weights (and the fingerprint its checkpoint carries) depend on the layer, the
    models, the data readers, the trainer and its configuration; not on the study's parameters, the
    evaluation, the paper's numbers, the released-file loader, the study object or any chapter.
    The train@<run> stage adds only its own module and the study's parameters (which profile and
    run): a change there reruns the stage, which finds its networks made by today's code."""
    from sdnet.provenance import weights_code

    code = weights_code(ROOT)
    assert {"sdnet/csc.py", "sdnet/models.py", "sdnet/train.py", "sdnet/config.py", "sdnet/data/loader.py", "sdnet/checkpoint.py"} <= code
    for module in ["params", "chapters/paper", "released", "study", "evaluate", "strict_json", "robustness", "attacks", "adaptive",
                   "analysis", "chapters/figures", "pipeline"]:
        assert f"sdnet/{module}.py" not in code, module
    assert not any(f.startswith(("sdnet/chapters/", "sdnet/tools/")) for f in code)
    for stage in STAGES:
        if stage.name.startswith("train@"):
            assert stage_code(ROOT, stage) == code | {"sdnet/stages/__init__.py", "sdnet/stages/train.py", "sdnet/params.py"}


def test_a_main_block_counts_only_for_the_command_it_is(tmp_path):
    pkg = tmp_path / "sdnet"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "tool.py").write_text("import sdnet.core\n\nif __name__ == '__main__':\n    from sdnet import extra\n")
    (pkg / "stage.py").write_text("from sdnet import tool\n")
    for name in ("core", "extra"):
        (pkg / f"{name}.py").write_text("")
    assert code_dependencies(tmp_path, modules=["sdnet.tool"]) == {"sdnet/__init__.py", "sdnet/tool.py", "sdnet/core.py", "sdnet/extra.py"}
    assert code_dependencies(tmp_path, modules=["sdnet.stage"]) == {"sdnet/__init__.py", "sdnet/stage.py", "sdnet/tool.py", "sdnet/core.py"}
    assert code_dependencies(tmp_path, imported=["sdnet.tool"]) == {"sdnet/__init__.py", "sdnet/tool.py", "sdnet/core.py"}


def test_each_committed_studys_own_pipeline_is_dvc_yaml_at_its_profile():
    """reports/<profile>/dvc.yaml is generated from dvc.yaml (`python -m sdnet.pipeline deps --write`)."""
    assert own_pipelines(ROOT), "the committed cpu study has its own pipeline file"
    for profile in own_pipelines(ROOT):
        assert own_pipeline_path(ROOT, profile).read_text() == own_pipeline(ROOT, profile), (
            f"reports/{profile}/dvc.yaml differs from dvc.yaml: run `python -m sdnet.pipeline deps --write`")


def test_an_own_pipeline_has_the_root_stages_at_its_profile_run_from_the_root():
    own = yaml.safe_load(own_pipeline(ROOT, "cpu"))
    root = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    assert list(own["stages"]) == list(root["stages"])
    assert own["vars"] == ["../../params.yaml:runs,profiles", {"profile": "cpu"}]
    for name, spec in own["stages"].items():
        body, original = (spec["do"], root["stages"][name]["do"]) if "foreach" in spec else (spec, root["stages"][name])
        assert body["wdir"] == "../.."
        assert body["cmd"] == original["cmd"] and body["deps"] == original["deps"] and body.get("outs") == original.get("outs")
        # the root's `profile` is not a parameter of this study: switching it reruns nothing here
        assert body["params"] == [p for p in original["params"] if p != "profile"]


LOADERS = {"load_model", "load_models", "train_lam", "checkpoint", "given_file"}  # sdnet.study.Study: what reads a run's network


def networks_read(source: str, runs: set[str]) -> set[str]:
    """The runs whose networks a notebook may read: if it calls a Study method that reads a network,
    every run name it writes as a string (e.g. ``for run in ("sdnet18", "sdnet18_all")``)."""
    tree = ast.parse(source)
    calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in runs} if calls & LOADERS else set()


@pytest.mark.parametrize("stage", [s for s in load_stages(ROOT) if s.notebook], ids=lambda s: s.name)
def test_a_chapter_that_reads_a_network_depends_on_it(stage):
    """A chapter that loads a run's network must rerun when that network is retrained: its stage
    lists ``reports/<profile>/models/<run>``, directly or through the results of a stage that does."""
    stages = load_stages(ROOT)
    runs = set(yaml.safe_load((ROOT / "params.yaml").read_text())["runs"])
    models = f"reports/{yaml.safe_load((ROOT / 'params.yaml').read_text())['profile']}/models/"
    reached = set(stage.deps) | {d for s in stages if set(s.outs) & set(stage.deps) for d in s.deps}
    declared = {d.removeprefix(models) for d in reached if d.startswith(models)}
    missing = networks_read(_notebook_source(ROOT / stage.notebook), runs) - declared
    assert not missing, f"{stage.name} reads the networks of {sorted(missing)}: add {', '.join('reports/${profile}/models/' + r for r in sorted(missing))} to its deps in dvc.yaml"
