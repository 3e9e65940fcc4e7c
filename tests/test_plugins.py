"""Plugins as a user has them: examples/s5bench-elman installed as a real distribution (its
entry points found by importlib.metadata), measured by the commands, resumed, merged and
drawn; broken plugins are one error line each and break nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import cli
from tests.cli_checks import assert_one_error_line

runner = CliRunner()
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "s5bench-elman"
TINY = ["--set", "ppo.num_envs=8", "--set", "ppo.num_steps=16", "--set",
        "ppo.num_minibatches=2", "--set", "ppo.update_epochs=1", "--total-steps", "256"]


@pytest.fixture(scope="module")
def example_site(tmp_path_factory) -> Path:
    """The example package installed with pip into a folder of its own (no download: no
    index, no build isolation; built from a copy so the source tree stays clean)."""
    source = tmp_path_factory.mktemp("source") / "s5bench-elman"
    shutil.copytree(EXAMPLE, source)
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(source)],
                   check=True, capture_output=True)
    return site


@pytest.fixture
def registries():
    """The environment registry (plugins register on first use) and the imported modules
    as they were before the test, restored after it."""
    from envs import registry

    envs, modules = dict(registry.ENVS), set(sys.modules)
    yield registry
    registry.ENVS.clear()
    registry.ENVS.update(envs)
    registry.PLUGINS.clear()
    for name in set(sys.modules) - modules:  # the plugins' modules: imported afresh next time
        if name.split(".")[0] in ("s5bench_elman", "boom", "shapes"):
            del sys.modules[name]


@pytest.fixture
def installed(example_site, monkeypatch, registries) -> Path:
    """The installed example on sys.path, as if pip had put it in site-packages."""
    monkeypatch.syspath_prepend(str(example_site))
    return example_site


def _fake_distribution(site: Path, name: str, entry_points: str,
                       modules: dict[str, str]) -> None:
    """A distribution as pip leaves one: NAME-1.0.dist-info (METADATA, entry_points.txt;
    the folder name with ``-`` escaped as ``_``, as importlib.metadata reads it) beside its
    modules."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, text in modules.items():
        (site / f"{module}.py").write_text(text)


@pytest.fixture
def broken_site(tmp_path, monkeypatch, registries) -> Path:
    """Installed plugins that each break one rule: a backbone and an environment whose
    modules raise on import, a backbone named like a built-in, a name two distributions
    claim; and, for import paths, classes that are not configs."""
    site = tmp_path / "site"
    raising = "raise RuntimeError('boom at import')\n"
    _fake_distribution(site, "boom-plugins", "[s5bench.backbones]\nboom = boom:Config\n"
                       "\n[s5bench.envs]\nBoomEnv = boom:make\n", {"boom": raising})
    _fake_distribution(site, "clash-a", "[s5bench.backbones]\ns5 = shapes:Plain\n"
                       "twin = shapes:Plain\n", {})
    _fake_distribution(site, "clash-b", "[s5bench.backbones]\ntwin = shapes:Plain\n", {})
    (site / "shapes.py").write_text(
        "import dataclasses\n\n"
        "class Plain:\n    def build(self): ...\n\n"
        "@dataclasses.dataclass(frozen=True)\n"
        "class NoBuild:\n    width: int = 1\n\n    @classmethod\n    def quick(cls): return cls()\n\n"
        "    def sized(self, d, n): return self\n")
    monkeypatch.syspath_prepend(str(site))
    return site


# ----------------------------------------------------------------------------- the example


def test_models_and_envs_list_the_installed_plugins(installed):
    """`models` and `envs` list the example's backbone and environment with its distribution and version."""
    models = runner.invoke(cli.app, ["models"])
    assert models.exit_code == 0, models.output
    (line,) = [line for line in models.output.splitlines() if line.startswith("elman ")]
    assert "params" in line and "[plugin: s5bench-elman 0.1.0" in line
    # Elman at quick size on 64 encoder features: input 64x64 + 64, recurrent 64x64 = 8,256.
    assert "quick     8,256 params" in line
    envs = runner.invoke(cli.app, ["envs", "--suite", "plugin"])
    assert envs.exit_code == 0, envs.output
    assert envs.output.split()[:2] == ["RecallFirst", "plugin"]
    assert "s5bench-elman 0.1.0, s5bench_elman.env:make" in envs.output


def test_check_passes_the_example_and_names_what_the_leaky_variant_breaks(installed):
    """`check elman --env RecallFirst` exits 0; the leaky variant exits 1 naming the reset properties."""
    good = runner.invoke(cli.app, ["check", "elman", "--env", "RecallFirst"])
    assert good.exit_code == 0, good.output
    assert "every property holds" in good.output and "FAIL" not in good.output
    for name in ("reset_isolates", "packed_equals_separate", "episode_ends", "obs_in_space"):
        assert name in good.output
    leaky = runner.invoke(cli.app, ["check", "s5bench_elman.leaky:LeakyElmanConfig"])
    assert leaky.exit_code == 1, leaky.output
    failed_line = leaky.output.strip().splitlines()[-1]
    assert failed_line == ("failed: s5bench_elman.leaky:LeakyElmanConfig: reset_isolates, "
                           "reset_at_start, packed_equals_separate")


def test_popgym_run_with_plugins_records_them_resumes_and_draws(installed, tmp_path):
    """A popgym run of the plugin backbone on the plugin env records both plugins, resumes and draws figures."""
    result = runner.invoke(cli.app, ["popgym", "--model", "elman", "--env", "RecallFirst",
                                     *TINY, "--out", str(tmp_path), "--run-id", "run"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    summary = pd.read_csv(run / "summary.csv")
    assert summary[["model", "env", "status"]].values.tolist() == [["elman", "RecallFirst", "ok"]]
    expected = [{"kind": "backbone", "name": "elman", "import_path":
                 "s5bench_elman.backbone:ElmanConfig", "distribution": "s5bench-elman",
                 "version": "0.1.0"},
                {"kind": "env", "name": "RecallFirst", "import_path": "s5bench_elman.env:make",
                 "distribution": "s5bench-elman", "version": "0.1.0"}]
    assert json.loads((run / "config.json").read_text())["plugins"] == expected
    assert json.loads((run / "meta.json").read_text())["plugins"] == expected

    resumed = runner.invoke(cli.app, ["popgym", "--resume", str(run)])
    assert resumed.exit_code == 0, resumed.output
    assert len(pd.read_csv(run / "summary.csv")) == 1  # the finished cell is not trained again
    drawn = runner.invoke(cli.app, ["figures", "--results", str(run), "--out",
                                    str(tmp_path / "figures")])
    assert drawn.exit_code == 0, drawn.output
    assert "drew" in drawn.output and any((tmp_path / "figures").glob("*.png"))


def test_resume_names_a_plugin_that_is_missing_or_at_another_version(installed, tmp_path,
                                                                     monkeypatch,
                                                                     stopped_training):
    """Resuming a plugin run at another plugin version, or without the plugin, is one line naming it, exit 2."""
    result = runner.invoke(cli.app, ["popgym", "--model", "elman", "--env", "RecallFirst",
                                     *TINY, "--out", str(tmp_path), "--run-id", "run"])
    assert result.exit_code == 2  # stopped where training starts, config.json written
    run = tmp_path / "run"
    doc = json.loads((run / "config.json").read_text())
    doc["plugins"][0]["version"] = "0.0.9"
    (run / "config.json").write_text(json.dumps(doc))
    other = runner.invoke(cli.app, ["popgym", "--resume", str(run)])
    assert_one_error_line(other, "the run used backbone plugin elman (s5bench-elman 0.0.9, "
                                 "s5bench_elman.backbone:ElmanConfig), but here it is "
                                 "elman (s5bench-elman 0.1.0")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(installed)])
    missing = runner.invoke(cli.app, ["popgym", "--resume", str(run)])
    assert_one_error_line(missing, "which cannot be used here: unknown model 'elman'")


@pytest.fixture
def stopped_training(monkeypatch):
    """Training exits (status 2) where it would start, after the run folder is written."""
    import benchmark.experiments.jobs

    def refuse(*args, **kwargs):
        raise SystemExit(2)

    monkeypatch.setattr(benchmark.experiments.jobs, "run_cells", refuse)


def test_sharded_plugin_run_merges(installed, tmp_path, monkeypatch):
    """Two shards of a plugin sweep merge into one run folder that records the plugins (training stubbed)."""
    import numpy as np

    import benchmark.experiments.cells as sweep
    from benchmark.train.loop import RunResult
    from benchmark.train.sharding import choose_mesh

    def run_training(config, on_chunk, *, on_compiled, **kwargs):
        plan = choose_mesh(config.num_seeds, config.ppo.num_envs, 1)
        on_compiled(plan, 0.5)
        return RunResult(runner=None, compile_s=0.5, train_s=1.0, host_s=0.0,
                         memory_bytes=None, env_steps=256, mean_return=np.ones((1, 2)),
                         diverged_at=np.zeros(1, int), mesh=plan)

    monkeypatch.setattr(sweep, "run_training", run_training)
    for shard in ("1/2", "2/2"):
        result = runner.invoke(cli.app, ["popgym", "--model", "elman,mlp", "--env",
                                         "RecallFirst", *TINY, "--out", str(tmp_path),
                                         "--run-id", "sweep", "--shard", shard])
        assert result.exit_code == 0, result.output
    merged = runner.invoke(cli.app, ["merge", str(tmp_path / "sweep")])
    assert merged.exit_code == 0, merged.output
    doc = json.loads((tmp_path / "sweep" / "config.json").read_text())
    assert [run["model"] for run in doc["runs"]] == ["elman", "mlp"]
    assert [p["name"] for p in doc["plugins"]] == ["elman", "RecallFirst"]
    summary = pd.read_csv(tmp_path / "sweep" / "summary.csv")
    assert summary.model.tolist() == ["elman", "mlp"]


def test_speed_times_the_plugin_backbone(installed, tmp_path):
    """`speed --models elman` writes ok rows for it and records the plugin in config.json."""
    result = runner.invoke(cli.app, ["speed", "--models", "elman", "--seq-len", "8",
                                     "--modes", "train,rollout", "--repeats", "1",
                                     "--warmup", "1", "--d-model", "8", "--layers", "1",
                                     "--out", str(tmp_path), "--run-id", "s"])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(tmp_path / "s" / "speed.csv")
    assert rows[["model", "mode", "status"]].values.tolist() == [
        ["elman", "train", "ok"], ["elman", "rollout", "ok"]]
    plugins = json.loads((tmp_path / "s" / "config.json").read_text())["plugins"]
    assert [(p["name"], p["version"]) for p in plugins] == [("elman", "0.1.0")]


# ----------------------------------------------------------------------------- bad plugins


@pytest.mark.parametrize("args,needle", [
    (["--model", "nowhere.module:Config"],
     "--model: backbone plugin 'nowhere.module:Config' does not import: ModuleNotFoundError"),
    (["--model", "shapes:Plain"], "Plain is not a frozen dataclass"),
    (["--model", "shapes:NoBuild"], "NoBuild has no build method"),
    (["--model", "shapes:Missing"], "module 'shapes' has no 'Missing'"),
    (["--model", "boom"], "backbone plugin boom (boom-plugins 1.0, boom:Config) does not "
                          "import: RuntimeError: boom at import"),
    (["--model", "s5"], "backbone name 's5' is claimed by s5bench's built-in and by s5 "
                        "(clash-a 1.0, shapes:Plain)"),
    (["--model", "twin"], "backbone name 'twin' is claimed by twin (clash-a 1.0, shapes:Plain)"
                          " and by twin (clash-b 1.0, shapes:Plain)"),
    (["--model", "mlp", "--env", "BoomEnv"], "--env: env plugin BoomEnv (boom-plugins 1.0, boom:make) does not "
                           "import: RuntimeError: boom at import"),
    (["--model", "mlp", "--env", "shapes:NoBuild.width"], "is not callable (int); expected a factory"),
])
def test_a_bad_plugin_is_one_line_before_anything_compiles(broken_site, tmp_path, args, needle,
                                                           no_compile):
    """Each bad plugin (import fails, not a config, a clash, raises on import) is one line naming it, exit 2, nothing written."""
    result = runner.invoke(cli.app, ["popgym", *args, "--out", str(tmp_path / "out")])
    assert_one_error_line(result, needle)
    assert not (tmp_path / "out").exists()


def test_broken_plugins_leave_other_commands_working(broken_site):
    """With broken plugins installed, `envs --suite popgym` works, `models` lists the rest and names each broken one, exit 2."""
    envs = runner.invoke(cli.app, ["envs", "--suite", "popgym"])
    assert envs.exit_code == 2  # the broken env plugin is named after the listing
    assert len([line for line in envs.output.splitlines() if "popgym" in line]) == 48
    models = runner.invoke(cli.app, ["models"])
    assert models.exit_code == 2
    errors = [line for line in models.output.splitlines() if line.startswith("error:")]
    # in listing order: the built-in s5 (claimed by clash-a too), then the plugins a-z
    assert len(errors) == 3 and "'s5' is claimed" in errors[0] and "clash-a" in errors[0]
    assert "boom" in errors[1] and "'twin' is claimed" in errors[2]
    listed = [line.split()[0] for line in models.output.splitlines() if "params" in line]
    assert listed == ["gru", "lstm", "trxl", "attention", "lru", "mamba", "mingru", "mlp"]


def test_help_imports_no_plugin_and_no_jax(broken_site):
    """`s5bench --help` with broken plugins installed prints the help, importing no plugin, JAX, numpy or pandas."""
    code = ("import sys\nsys.argv = ['s5bench', '--help']\nimport cli\ntry:\n    cli.app()\n"
            "except SystemExit as stop:\n    code = stop.code\n"
            "heavy = sorted(m for m in ('jax', 'numpy', 'pandas', 'boom', 'shapes') "
            "if m in sys.modules)\nprint('imported:', heavy, 'exit:', code)\n")
    env = {"PYTHONPATH": f"{broken_site}:{Path(cli.__file__).parent}", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert "check" in out and "popgym" in out
    assert out.strip().splitlines()[-1] == "imported: [] exit: 0"
