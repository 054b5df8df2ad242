"""The analysis config (TOML): example configs, defaults, validation errors, selections."""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from pathlib import Path

import polars as pl
import pytest
from conftest import SSWW_DIR

import vbsad_batch.config.schema as config_module
from vbsad_batch.config import (
    DEFAULT_FEATURES,
    DEFAULT_SELECTION,
    ENERGY_LIKE,
    ConfigError,
    ModelSpec,
    ScanConfig,
    SelectionError,
    TrainingConfig,
    load_config,
    selection_columns,
    selection_expr,
)
from vbsad_batch.demo.lhe_writer import DEFAULT_OPERATORS, generate_demo

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PAPER_OPERATORS = ("cW", "cHW", "cHq1", "cqq1", "cqq11", "cqq3", "cqq31")


# --- example configs -----------------------------------------------------------------------------


def test_every_example_config_is_covered() -> None:
    names = {p.name for p in EXAMPLES.glob("*.toml")}
    assert names == {"ssww_paper.toml", "ssww_real.toml", "demo_reweighted.toml"}


def test_paper_example_documents_the_reference_setup() -> None:
    config = load_config(EXAMPLES / "ssww_paper.toml", check_files=False)
    assert config.luminosity_fb == 350.0
    assert config.selection == DEFAULT_SELECTION
    assert config.features == DEFAULT_FEATURES
    assert set(config.log_features) == set(ENERGY_LIKE)
    assert config.training_operator == "cW"
    assert config.operators() == tuple(sorted(PAPER_OPERATORS))
    assert (config.split.train, config.split.test) == (0.8, 0.2)
    by_name = {s.name: s for s in config.samples}
    assert by_name["SSWW_SM"].component == "sm"
    assert by_name["SSWW_SM"].files == ((EXAMPLES / "data" / "SSWW_SM.lhe.gz").resolve(),)
    for op in PAPER_OPERATORS:
        lin, quad = by_name[f"SSWW_{op}_LI"], by_name[f"SSWW_{op}_QU"]
        assert (lin.component, lin.operators) == ("lin", (op,))
        assert (quad.component, quad.operators) == ("quad", (op,))
        assert lin.files[0].name == f"SSWW_{op}_LI.lhe.gz"
        assert quad.files[0].name == f"SSWW_{op}_QU.lhe.gz"
    assert len(config.samples) == 1 + 2 * len(PAPER_OPERATORS)


def test_paper_example_without_its_data_names_the_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"samples\[0\]\.files: 'data/SSWW_SM.lhe.gz' does not"):
        load_config(EXAMPLES / "ssww_paper.toml")


def test_real_example_points_at_the_shared_samples() -> None:
    config = load_config(EXAMPLES / "ssww_real.toml")
    files = {s.component: s.files for s in config.samples}
    assert files == {
        "sm": ((SSWW_DIR / "ssww_SM.lhe.gz").resolve(),),
        "lin": ((SSWW_DIR / "ssww_cW_LIN.lhe.gz").resolve(),),
        "quad": ((SSWW_DIR / "ssww_cW_QUAD.lhe.gz").resolve(),),
    }
    assert config.operators() == ("cW",)
    assert config.output_dir == (EXAMPLES / "vbsad-output" / "ssww_real").resolve()


def test_reweighted_example_with_generated_demo_data(tmp_path: Path) -> None:
    generate_demo(tmp_path / "demo", n_events=20, seed=3, eft_samples=False)
    config_path = tmp_path / "demo_reweighted.toml"
    shutil.copy(EXAMPLES / "demo_reweighted.toml", config_path)
    config = load_config(config_path)
    assert config.samples == ()
    (rw,) = config.reweighted
    assert rw.files == ((tmp_path / "demo" / "ssww_demo.lhe.gz").resolve(),)
    assert rw.sm_weight == "sm"
    assert rw.points == {op: (f"{op}_p1", f"{op}_m1", 1.0) for op in DEFAULT_OPERATORS}
    assert config.operators() == tuple(sorted(DEFAULT_OPERATORS))


def test_reweighted_example_needs_its_demo_file(tmp_path: Path) -> None:
    # A copy away from examples/, where `make run` may have written the demo sample.
    config = tmp_path / "demo_reweighted.toml"
    shutil.copyfile(EXAMPLES / "demo_reweighted.toml", config)
    with pytest.raises(ConfigError, match=r"reweighted\[0\]\.files"):
        load_config(config)
    load_config(config, check_files=False)


# --- a config written in the test ----------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """Empty stand-in input files (the config checks existence, not content)."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("sm_1.lhe.gz", "sm_2.lhe.gz", "lin.lhe", "quad.parquet", "mix.root"):
        (data / name).write_bytes(b"")
    return data


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ana.toml"
    path.write_text(text, encoding="utf-8")
    return path


BASE = """
operators = ["cW", "cHW"]
[[samples]]
component = "sm"
files = "data/sm_*.lhe.gz"
[[samples]]
component = "lin"
operator = "cW"
files = ["data/lin.lhe"]
xsec_pb = -1.5e-4
[[samples]]
component = "quad"
operators = ["cW"]
files = "data/quad.parquet"
[[samples]]
component = "mix"
operators = ["cW", "cHW"]
files = "data/mix.root"
"""


def test_defaults_and_resolution(tmp_path: Path, data_dir: Path) -> None:
    config = load_config(_write(tmp_path, BASE))
    assert config.path == (tmp_path / "ana.toml").resolve()
    assert config.luminosity_fb == 350.0
    assert config.selection == DEFAULT_SELECTION
    assert config.features == DEFAULT_FEATURES
    assert config.log_features == ENERGY_LIKE
    assert (config.split.train, config.split.validation, config.split.test) == (0.6, 0.2, 0.2)
    assert config.split.seed == 0
    assert config.training == TrainingConfig()
    assert config.training_operator is None
    assert config.output_dir == (tmp_path / "vbsad-output" / "ana").resolve()
    sm, lin, quad, mix = config.samples
    data_dir = data_dir.resolve()
    assert sm.files == (data_dir / "sm_1.lhe.gz", data_dir / "sm_2.lhe.gz")  # glob, sorted
    assert sm.operators == ()
    assert (lin.name, lin.operators, lin.xsec_pb) == ("lin_cW", ("cW",), -1.5e-4)
    assert quad.operators == ("cW",)
    assert mix.operators == ("cHW", "cW")  # sorted
    assert mix.name == "mix_cHW_cW"
    assert config.operators() == ("cHW", "cW")
    # The mixed sample provides cHW: declaring it is then enough.


def test_explicit_values(tmp_path: Path, data_dir: Path) -> None:
    text = (
        """
luminosity_fb = 3000
selection = "mjj > 500 and not (ptl1 < 25)"
features = ["mjj", "ptl1", "etal1"]
training_operator = "cHW"
output_dir = "/abs/out"
"""
        + BASE
        + "[split]\ntrain = 0.5\nvalidation = 0.25\ntest = 0.25\nseed = 7\n"
    )
    config = load_config(_write(tmp_path, text))
    assert config.luminosity_fb == 3000.0
    assert config.features == ("mjj", "ptl1", "etal1")
    assert config.log_features == ("mjj", "ptl1")  # default: the energy-like features
    assert config.training_operator == "cHW"
    assert config.output_dir == Path("/abs/out")
    assert (config.split.train, config.split.seed) == (0.5, 7)


def test_training_defaults_are_the_documented_paper_recipe() -> None:
    training = TrainingConfig()
    assert training.optimizer == "adam"
    assert training.learning_rate == 5e-4
    assert (training.epochs, training.patience, training.batch_size) == (200, 10, 32)
    assert training.latent_dim == 3
    assert training.hidden_layers == (20, 10, 7)
    assert (training.beta, training.bce_weight) == (0.001, 1.0)
    assert training.classifier_units == 50
    assert training.leaky_relu_alpha == 0.3
    assert training.seed == 0


def _documented_section(name: str) -> dict[str, object]:
    """The `[name]` block of config.py's docstring, parsed as TOML."""
    lines = (config_module.__doc__ or "").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(f"[{name}]"))
    block = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        block.append(line.split("#", 1)[0].strip())
    return tomllib.loads("\n".join(block))


def test_schema_docstring_documents_the_training_defaults() -> None:
    """The `[training]` block of config.py's docstring is valid TOML with the real defaults."""
    defaults = dataclasses.asdict(TrainingConfig())
    defaults["hidden_layers"] = list(defaults["hidden_layers"])
    assert _documented_section("training") == defaults


def test_scan_section_defaults_documented_and_explicit(tmp_path: Path, data_dir: Path) -> None:
    defaults = dataclasses.asdict(ScanConfig())
    defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
    assert _documented_section("scan") == defaults
    assert (ScanConfig().significance, ScanConfig().min_sm_mc_events) == (3.0, 10)
    assert load_config(_write(tmp_path, BASE)).scan == ScanConfig()
    text = BASE + (
        "[scan]\nsignificance = 2\nmin_sm_mc_events = 1\nmin_sm_yield = 0\n"
        "bootstrap_replicas = 0\nseed = 4\nvae_scores = 'kld'\nvae_nn_scores = ['mse', 'score']\n"
    )
    scan = load_config(_write(tmp_path, text)).scan
    assert scan == ScanConfig(
        significance=2.0,
        min_sm_mc_events=1,
        min_sm_yield=0.0,
        bootstrap_replicas=0,
        seed=4,
        vae_scores=("kld",),
        vae_nn_scores=("mse", "score"),
    )
    assert scan.score_columns("vae_nn") == ("mse", "score")


def test_training_section(tmp_path: Path, data_dir: Path) -> None:
    text = (
        BASE
        + """
[training]
optimizer = "adam"
learning_rate = 0.001
epochs = 5
patience = 2
batch_size = 4096
latent_dim = 7
hidden_layers = [32, 16]
beta = 0.5
bce_weight = 2
classifier_units = 8
leaky_relu_alpha = 0.1
seed = 3
"""
    )
    config = load_config(_write(tmp_path, text))
    assert config.training == TrainingConfig(
        learning_rate=0.001,
        epochs=5,
        patience=2,
        batch_size=4096,
        latent_dim=7,
        hidden_layers=(32, 16),
        beta=0.5,
        bce_weight=2.0,
        classifier_units=8,
        leaky_relu_alpha=0.1,
        seed=3,
    )
    assert isinstance(config.training.bce_weight, float)
    partial = load_config(_write(tmp_path, BASE + "[training]\nlatent_dim = 5\n"))
    assert partial.training == TrainingConfig(latent_dim=5)


def _replace(old: str, new: str) -> str:
    assert old in BASE
    return BASE.replace(old, new, 1)


ERRORS: list[tuple[str, str]] = [
    # unknown keys, with the nearest valid key suggested
    ("luminosity = 300\n" + BASE, r"luminosity: unknown key \(did you mean 'luminosity_fb'\?\)"),
    (_replace('operator = "cW"', 'operater = "cW"'), r"samples\[1\]\.operater: unknown key.*"),
    (BASE + "[split]\ntrian = 0.6\n", r"split\.trian: unknown key \(did you mean 'train'\?\)"),
    # files
    (_replace("data/lin.lhe", "data/nope.lhe"), r"samples\[1\]\.files\[0\]: 'data/nope.lhe' does"),
    (_replace("data/sm_*.lhe.gz", "data/sm_*.root"), r"samples\[0\]\.files: the pattern"),
    (_replace("data/mix.root", "data/mix.txt"), r"samples\[3\]\.files: 'data/mix.txt' is not an"),
    # components and operators
    (_replace('component = "sm"', 'component = "lin"\noperator = "cHW"'), r"needs an SM sample"),
    (_replace('operator = "cW"', 'operator = "cWW"'), r"'cWW' is not declared.*'cW'"),
    (BASE.replace('operators = ["cW", "cHW"]\n', "", 1), r"'cW' is not declared: add"),
    (_replace('component = "quad"', 'component = "lin"'), r"samples\[2\]\.component: a second"),
    (_replace('["cW", "cHW"]\nfiles', '["cW", "cW"]\nfiles'), r"two different operators"),
    (_replace('component = "sm"', 'component = "sm"\noperator = "cW"'), r"takes no operator"),
    (_replace('component = "sm"', 'component = "SM"'), r"'SM' is not one of.*"),
    (
        _replace('operators = ["cW", "cHW"]', 'operators = ["cW", "cHW", "cHq1"]'),
        r"operators\[2\]: operator 'cHq1' is",
    ),
    (_replace('files = "data/quad.parquet"', 'files = "data/lin.lhe"'), r"also an input of"),
    # numbers
    ("luminosity_fb = -1\n" + BASE, r"luminosity_fb: must be > 0"),
    ("luminosity_fb = 'x'\n" + BASE, r"luminosity_fb: expected a number"),
    (BASE + "[split]\ntrain = 0.7\n", r"split: train \+ validation \+ test must sum to 1"),
    (BASE + "[split]\ntest = -0.1\ntrain=0.9\n", r"split\.test: must be in \[0, 1\]"),
    (BASE + "[split]\nseed = 1.5\n", r"split\.seed: expected an integer"),
    (_replace('files = ["data/lin.lhe"]\n', 'files = ["data/lin.lhe"]\nname = "x"\n'), r""),
    (_replace('files = "data/sm_*.lhe.gz"', 'files = "data/sm_*.lhe.gz"\nxsec_pb = -1'), r"> 0"),
    (_replace("xsec_pb = -1.5e-4", "xsec_pb = 0"), r"samples\[1\]\.xsec_pb: .*must not be 0"),
    # observables
    ('features = ["mjj", "ptjj"]\n' + BASE, r"features\[1\]: unknown observable 'ptjj'"),
    ('log_features = ["mjj", "etaj1x"]\n' + BASE, r"log_features\[1\]: unknown observable"),
    ('features = ["mjj"]\nlog_features = ["ptl1"]\n' + BASE, r"log_features\[0\]: 'ptl1' is not"),
    ('selection = "mjj > 200 and ptjj > 3"\n' + BASE, r"selection: unknown column 'ptjj'"),
    ('selection = "mjj >"\n' + BASE, r"selection: expected a column name, a number"),
    ('training_operator = "cqq1"\n' + BASE, r"training_operator: operator 'cqq1' is not"),
    ("[[samples]]\ncomponent = 1\nfiles='x.lhe'\n", r"samples\[0\]\.component: expected a str"),
    ("operators = []\n", r"samples: no samples"),
    ("x = [\n", r"invalid TOML"),
    # training
    (BASE + "[training]\nlearning_rat = 1\n", r"training\.learning_rat: unknown key \(did you"),
    (BASE + "[training]\noptimizer = 'sgd'\n", r"training\.optimizer: 'sgd' is not supported"),
    (BASE + "[training]\nlearning_rate = 0\n", r"training\.learning_rate: must be > 0"),
    (BASE + "[training]\nepochs = 0\n", r"training\.epochs: must be >= 1, got 0"),
    (BASE + "[training]\nepochs = 2.5\n", r"training\.epochs: expected an integer"),
    (BASE + "[training]\npatience = true\n", r"training\.patience: expected an integer"),
    (BASE + "[training]\nbatch_size = -4\n", r"training\.batch_size: must be >= 1"),
    (BASE + "[training]\nlatent_dim = 2\n", r"training\.latent_dim: must be in 3\.\.7, got 2"),
    (BASE + "[training]\nlatent_dim = 8\n", r"training\.latent_dim: must be in 3\.\.7, got 8"),
    (BASE + "[training]\nhidden_layers = []\n", r"training\.hidden_layers: must not be empty"),
    (BASE + "[training]\nhidden_layers = 20\n", r"training\.hidden_layers: expected a list"),
    (BASE + "[training]\nhidden_layers = [20, 0]\n", r"training\.hidden_layers\[1\]: must be >= 1"),
    (BASE + "[training]\nbeta = -1\n", r"training\.beta: must be >= 0"),
    (BASE + "[training]\nbce_weight = 'x'\n", r"training\.bce_weight: expected a number"),
    (BASE + "[training]\nclassifier_units = 0\n", r"training\.classifier_units: must be >= 1"),
    (BASE + "[training]\nleaky_relu_alpha = nan\n", r"training\.leaky_relu_alpha: must be finite"),
    (BASE + "[training]\nseed = -1\n", r"training\.seed: must be >= 0"),
    (BASE + "[training]\nseed = 1\nseeds = [2]\n", r"training\.seeds: give either `seed` or"),
    (BASE + "[training]\nseeds = []\n", r"training\.seeds: expected a non-empty list"),
    (BASE + "[training]\nseeds = [1, 1]\n", r"training\.seeds\[1\]: 1 is listed twice"),
    (BASE + "[training]\nlatent_dims = [3, 9]\n", r"training\.latent_dims\[1\]: must be in 3"),
    (
        'training_operator = "cW"\ntraining_operators = ["cW"]\n' + BASE,
        r"training_operators: give either",
    ),
    ('training_operators = ["cW", "cqq1"]\n' + BASE, r"training_operators\[1\]: operator 'cqq1'"),
    ("training = 3\n" + BASE, r"training: expected a table"),
    # scan
    (BASE + "[scan]\nsignificanse = 3\n", r"scan\.significanse: unknown key \(did you"),
    (BASE + "[scan]\nsignificance = 0\n", r"scan\.significance: must be > 0"),
    (BASE + "[scan]\nmin_sm_mc_events = 0\n", r"scan\.min_sm_mc_events: must be >= 1"),
    (BASE + "[scan]\nmin_sm_yield = -1\n", r"scan\.min_sm_yield: must be >= 0 events"),
    (BASE + "[scan]\nbootstrap_replicas = 1.5\n", r"scan\.bootstrap_replicas: expected an int"),
    (BASE + "[scan]\nbootstrap_chunk = 0\n", r"scan\.bootstrap_chunk: must be >= 1"),
    (BASE + "[scan]\ninterval_bins = 1\n", r"scan\.interval_bins: must be >= 2"),
    (BASE + "[scan]\ncurve_points = -1\n", r"scan\.curve_points: must be >= 0"),
    (BASE + "[scan]\nvae_scores = ['score']\n", r"scan\.vae_scores\[0\]: 'score' is not a score"),
    (BASE + "[scan]\nvae_nn_scores = ['scor']\n", r"vae_nn_scores\[0\]: .*did you mean 'score'"),
    (BASE + "[scan]\nvae_scores = []\n", r"scan\.vae_scores: must not be empty"),
    (BASE + "[scan]\nvae_scores = ['mse', 'mse']\n", r"scan\.vae_scores\[1\]: 'mse' is listed"),
]


@pytest.mark.parametrize(("text", "pattern"), ERRORS)
def test_errors_name_the_file_and_key(
    tmp_path: Path, data_dir: Path, text: str, pattern: str
) -> None:
    path = _write(tmp_path, text)
    if pattern == "":  # a control case: valid
        load_config(path)
        return
    with pytest.raises(ConfigError, match=pattern) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path.resolve()}: ")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.toml")


def test_check_files_false_keeps_unmatched_paths(tmp_path: Path) -> None:
    text = BASE.replace("data/", "elsewhere/")
    config = load_config(_write(tmp_path, text), check_files=False)
    assert config.samples[1].files == ((tmp_path / "elsewhere" / "lin.lhe").resolve(),)


REWEIGHTED = """
operators = ["cW", "cHW"]
[[reweighted]]
files = "data/sm_1.lhe.gz"
sm_weight = "sm"
"""


def test_reweighted_points_explicit_and_templates(tmp_path: Path, data_dir: Path) -> None:
    explicit = REWEIGHTED + (
        'points.cW = { plus = "a", minus = "b", k = 0.5 }\n'
        'points.cHW = { plus = "c", minus = "d", k = 2 }\n'
    )
    (rw,) = load_config(_write(tmp_path, explicit)).reweighted
    assert rw.points == {"cHW": ("c", "d", 2.0), "cW": ("a", "b", 0.5)}
    assert rw.name == "reweighted0"
    template = REWEIGHTED + 'plus = "rw_{op}_p"\nminus = "rw_{op}_m"\nk = 1\n'
    (rw,) = load_config(_write(tmp_path, template)).reweighted
    assert rw.points == {"cHW": ("rw_cHW_p", "rw_cHW_m", 1.0), "cW": ("rw_cW_p", "rw_cW_m", 1.0)}


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        ('points.cW = { plus = "a", minus = "b" }\n', r"reweighted\[0\]\.points\.cW\.k: missing"),
        ('points.cX = { plus = "a", minus = "b", k = 1 }\n', r"points\.cX: operator 'cX' is not"),
        ('points.cW = { plus = "a", minus = "b", k = 1, q = 2 }\n', r"points\.cW\.q: unknown"),
        ('plus = "p"\nminus = "{op}_m"\nk = 1\n', r"reweighted\[0\]\.plus: template 'p' must"),
        ('plus = "{op}_p"\nminus = "{op}_m"\nk = 0\n', r"reweighted\[0\]\.k: must be > 0"),
        ('plus = "{op}_p"\nminus = "{op}_p"\nk = 1\n', r"weight ids at 0, \+k, -k must differ"),
        ('plus = "{op}_p"\n', r"reweighted\[0\]\.minus: missing"),
        (
            'plus = "{op}_p"\nminus = "{op}_m"\nk = 1\n[[samples]]\ncomponent = "sm"\n'
            'files = "data/sm_2.lhe.gz"\n',
            r"reweighted\[0\]: a second source of sm",
        ),
    ],
)
def test_reweighted_errors(tmp_path: Path, data_dir: Path, extra: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_config(_write(tmp_path, REWEIGHTED + extra))


# --- selection expressions -----------------------------------------------------------------------

FRAME = pl.DataFrame(
    {
        "mjj": [100.0, 250.0, 600.0, 900.0, 300.0],
        "ptj1": [40.0, 20.0, 35.0, 80.0, 31.0],
        "ptj2": [35.0, 35.0, 30.0, 45.0, 30.5],
        "deltaetajj": [3.0, 2.5, 1.0, 4.0, 2.1],
        "etal1": [-1.5, 0.2, -0.1, 2.0, -2.4],
    }
)


def _rows(selection: str) -> list[int]:
    mask = FRAME.with_columns(selection_expr(selection).alias("m"))["m"].to_list()
    return [i for i, keep in enumerate(mask) if keep]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        # hand evaluated on FRAME
        (DEFAULT_SELECTION, [3, 4]),
        ("mjj > 200", [1, 2, 3, 4]),
        ("mjj >= 250 and mjj <= 600", [1, 2, 4]),
        ("mjj == 300 or ptj1 != 40", [1, 2, 3, 4]),
        ("ptj1 < 30 or ptj2 < 31 and mjj > 400", [1, 2]),  # and binds tighter than or
        ("(ptj1 < 30 or ptj2 < 31) and mjj > 400", [2]),
        ("not mjj > 200 or not (deltaetajj > 2)", [0, 2]),
        ("not not mjj > 800", [3]),
        ("etal1 > -2 and etal1 < -0.05", [0, 2]),
        ("200 < mjj and 1.5e2 > ptj1", [1, 2, 3, 4]),
        ("ptj1 > ptj2", [0, 2, 3, 4]),
        ("  ", [0, 1, 2, 3, 4]),
        ("", [0, 1, 2, 3, 4]),
    ],
)
def test_selection_expressions(selection: str, expected: list[int]) -> None:
    assert _rows(selection) == expected


@pytest.mark.parametrize(
    ("selection", "pattern"),
    [
        ("mjj > 200 and ptjj > 30", r"unknown column 'ptjj' at position 14.*did you mean 'ptj"),
        ("__import__('os') > 1", r"unexpected character \"'\" at position 11"),
        ("__class__ > 1", r"unknown column '__class__' at position 0"),
        ("mjj > 200 &", r"unexpected character '&' at position 10"),
        ("mjj > 200 and", r"expected a column name.*found end of expression"),
        ("(mjj > 200", r"expected '\)'"),
        ("mjj > 200)", r"expected 'and', 'or' or the end"),
        ("mjj 200", r"expected a comparison"),
        ("3 > 2", r"compares two numbers"),
        ("mjj > - x", r"a number after '-'"),
        ("mjj > 200 or", r"found end of expression"),
    ],
)
def test_selection_errors(selection: str, pattern: str) -> None:
    with pytest.raises(SelectionError, match=pattern):
        selection_expr(selection)


def test_selection_columns_and_custom_columns() -> None:
    assert selection_columns(DEFAULT_SELECTION) == ["ptj1", "ptj2", "deltaetajj", "mjj"]
    assert selection_columns("") == []
    expr = selection_expr("score > 0.5", columns=["score"])
    assert pl.DataFrame({"score": [0.1, 0.9]}).filter(expr)["score"].to_list() == [0.9]
    with pytest.raises(SelectionError, match="unknown column 'mjj'"):
        selection_expr("mjj > 1", columns=["score"])


def test_a_grid_of_models(tmp_path: Path, data_dir: Path) -> None:
    text = 'training_operators = ["cW", "cHW"]\n' + BASE
    text += "[training]\nseeds = [0, 1, 2]\nlatent_dims = [3, 5]\n"
    config = load_config(_write(tmp_path, text))
    assert (config.training.seed, config.training.latent_dim) == (0, 3)  # the first ones
    assert config.training_operator == "cW"
    names = [spec.name for spec in config.models()]
    assert len(names) == len(set(names)) == 6 + 12  # VAE: 2 x 3; VAE+NN: 2 x 2 x 3
    assert names[:3] == ["vae_latent3", "vae_latent3_seed1", "vae_latent3_seed2"]
    assert "vae_nn_latent5_cHW_seed2" in names
    assert {spec.group for spec in config.models(["vae"])} == {"vae_latent3", "vae_latent5"}
    for spec in config.models():
        assert ModelSpec.from_name(spec.name) == spec
    only = config.models(["vae_nn"], seeds=[1], training_operators=["cHW"])
    assert [spec.name for spec in only] == ["vae_nn_latent3_cHW_seed1", "vae_nn_latent5_cHW_seed1"]
    single = load_config(_write(tmp_path, BASE))
    assert [spec.name for spec in single.models()] == ["vae_latent3"]  # no VAE+NN operator
