"""The analysis configuration: one TOML file, validated into frozen dataclasses.

Every error raises `ConfigError` with a message ``"<config file>: <key path>: <problem>"``,
for example ``"ana.toml: samples[2].operator: 'cWW' is not declared in `operators`"``; an
unknown key comes with the nearest valid key as a suggestion.

Relative paths (sample files, `output_dir`) are relative to the directory of the config file.

Schema (every top-level key is optional except `samples` / `reweighted`, at least one of which
must hold a sample)::

    operators = ["cW", "cHW"]       # EFT operators of the analysis (Wilson coefficients at
                                    # Lambda = 1 TeV); every operator used below is declared here,
                                    # every declared operator is provided by some sample
    luminosity_fb = 350.0           # integrated luminosity, fb^-1 (> 0)
    selection = "ptj1 > 30 and ptj2 > 30 and deltaetajj > 2 and mjj > 200"
                                    # event selection, see `selection_expr`; "" selects all
    features = ["mll", "mjj", ...]  # model inputs (observable names), default the 14 of DESIGN.md
    log_features = ["mll", ...]     # features that get log10, a subset of `features`;
                                    # default: the energy-like ones among `features`
    training_operator = "cW"        # operator of the mixed SM+EFT training set of the VAE+NN
                                    # (declared); or a list (a grid, see below):
                                    # training_operators = ["cW", "cHW"]
    output_dir = "vbsad-output/ana" # default <config dir>/vbsad-output/<config file stem>

    [split]                         # deterministic train/validation/test split
    train = 0.6                     # fractions in [0, 1], summing to 1
    validation = 0.2
    test = 0.2
    seed = 0                        # integer >= 0

    [training]                      # the models (defaults: the reference paper's recipe)
    optimizer = "adam"              # only "adam"
    learning_rate = 5e-4            # Adam step size (> 0)
    epochs = 200                    # maximum number of epochs (integer >= 1)
    patience = 10                   # early stopping: epochs without a lower validation loss
                                    # (integer >= 1)
    batch_size = 32                 # events per batch (integer >= 1)
    latent_dim = 3                  # latent space size (integer in 3..7)
    hidden_layers = [20, 10, 7]     # encoder Dense widths; the decoder mirrors them
    beta = 0.001                    # weight of the KL divergence in the VAE loss (>= 0)
    bce_weight = 1.0                # VAE+NN: weight of the classifier's binary cross-entropy
                                    # (>= 0)
    classifier_units = 50           # VAE+NN: width of the linear Dense layer of the classifier
    leaky_relu_alpha = 0.3          # negative slope of the LeakyReLU activations (>= 0)
    seed = 0                        # weight initialisation and sampling (integer >= 0)
    data_parallel = false           # under `mpiexec -n N`: train each model on all N ranks,
                                    # each taking 1/N of every batch (gradients averaged);
                                    # false: the grid's models are spread over the ranks

    A grid of models: `[training]` also takes `seeds = [0, 1, 2]` instead of `seed` and
    `latent_dims = [3, 5, 7]` instead of `latent_dim`; with `training_operators` above, every
    combination is one model (its own directory, manifest and unit of work), trained, scored and
    scanned; the sensitivity table quotes, per model kind and latent size, the median limit over
    the seeds with their spread.

    [scan]                          # sensitivity scans of `vbsad scan` (vbsad_batch.scan)
    significance = 3.0              # z of the limits: proxy sigma and Asimov Z (> 0)
    min_sm_mc_events = 10           # admissible region: at least this many SM Monte Carlo
                                    # events (integer >= 1) ...
    min_sm_yield = 1.0              # ... and at least this SM yield, events at the luminosity
                                    # (>= 0)
    bootstrap_replicas = 100        # replicas of the Monte Carlo uncertainty (integer >= 0;
                                    # 0: no uncertainty)
    bootstrap_chunk = 10            # replicas per unit of work across MPI ranks (integer >= 1);
                                    # does not change the numbers
    seed = 0                        # bootstrap seed (integer >= 0)
    interval_bins = 20              # score bins of the 95% CL likelihood (integer >= 2)
    curve_points = 2000             # rows per curve in curves.parquet, evenly spaced in
                                    # threshold rank (integer >= 0; 0: every threshold)
    vae_scores = ["mse"]            # score column(s) of a VAE: "mse" and/or "kld"
    vae_nn_scores = ["score"]       # of a VAE+NN: "score" (classifier), "mse", "kld"
    region_from = "validation"      # where each limit's region (threshold) is chosen: on the
                                    # validation split, the limit then quoted on the test split
                                    # ("validation"), or on the test events themselves ("test",
                                    # the reference paper's method, optimistic)

    [[samples]]                     # one separately generated sample
    name = "SSWW_SM"                # optional, default "<component>[_<operator(s)>]"; unique
    component = "sm"                # "sm" | "lin" | "quad" | "mix"
    operator = "cW"                 # lin/quad: one operator (or `operators = ["cW"]`)
    operators = ["cW", "cHW"]       # mix: two different operators; sm: none
    files = ["data/SSWW_SM.lhe.gz"] # a path or a list of paths / glob patterns: LHE (.lhe,
                                    # .lhe.gz), Parquet shards of `vbsad preprocess` (.parquet),
                                    # or ROOT ntuples (.root)
    xsec_pb = 2.64e-3               # optional cross-section override, pb (the sample's LHE /
                                    # ntuple value is used otherwise); > 0 for sm and quad,
                                    # non-zero for lin and mix (interference can be negative)

    [[reweighted]]                  # one sample with reweighting weights at c = 0, +k, -k
    name = "demo"                   # optional, default "reweighted<index>"
    files = "demo/ssww_demo.lhe.gz"
    xsec_pb = 2.64e-3               # optional override, pb (> 0)
    sm_weight = "sm"                # weight id at c = 0 (all coefficients 0)
    # either every operator explicitly ...
    points.cW = { plus = "cW_p1", minus = "cW_m1", k = 1.0 }
    # ... or by templates ("{op}" is replaced by the operator name) for a list of operators:
    operators = ["cW", "cHW"]       # default: the top-level `operators`
    plus = "{op}_p1"
    minus = "{op}_m1"
    k = 1.0                         # > 0

    [slurm]                         # resources of the batch jobs of `vbsad submit`: see
    partition = "short"             # `vbsad_batch.config.slurm` (per stage: [slurm.train] ...)

A component is provided by exactly one source: one `sm` sample or one reweighted sample gives
SM, and each (component, operator) pair of LIN / QUAD / MIX comes from one sample or one
reweighted point. A LIN, QUAD or MIX sample needs an SM source. The weight ids of reweighted
samples are checked when the files are read, not here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from vbsad_batch.config.slurm import SlurmConfig
from vbsad_batch.ingest.lhe import OBSERVABLE_COLUMNS

__all__ = [
    "DEFAULT_FEATURES",
    "DEFAULT_SELECTION",
    "ENERGY_LIKE",
    "INPUT_SUFFIXES",
    "LATENT_DIM_RANGE",
    "MODEL_KINDS",
    "SCORE_COLUMNS",
    "AnalysisConfig",
    "Component",
    "ConfigError",
    "ModelGrid",
    "ModelKind",
    "ModelSpec",
    "RegionFrom",
    "ReweightedConfig",
    "SampleConfig",
    "ScanConfig",
    "SplitConfig",
    "TrainingConfig",
]

Component = Literal["sm", "lin", "quad", "mix"]

DEFAULT_SELECTION = "ptj1 > 30 and ptj2 > 30 and deltaetajj > 2 and mjj > 200"
"""The VBS selection of DESIGN.md (GeV for transverse momenta and masses)."""

ENERGY_LIKE: tuple[str, ...] = ("met", "mjj", "mll", "ptj1", "ptj2", "ptl1", "ptl2", "ptll")
"""Observables in GeV; the reference model takes their log10."""

DEFAULT_FEATURES: tuple[str, ...] = OBSERVABLE_COLUMNS[:14]
"""The 14 model inputs of DESIGN.md."""

INPUT_SUFFIXES: tuple[str, ...] = (".lhe", ".lhe.gz", ".parquet", ".root")
"""File name endings accepted as sample inputs."""


class ConfigError(ValueError):
    """An invalid analysis configuration; the message names the file and the key path."""


# --- the configuration model -----------------------------------------------------------------


@dataclass(frozen=True)
class SampleConfig:
    """One separately generated sample.

    Attributes:
        name: unique sample name.
        component: "sm", "lin", "quad" or "mix".
        operators: () for sm, (op,) for lin / quad, (op1, op2) sorted for mix.
        files: input files, resolved, sorted, globs expanded (LHE, Parquet shards or ROOT).
        xsec_pb: cross-section override, pb; None: taken from each file.
    """

    name: str
    component: Component
    operators: tuple[str, ...]
    files: tuple[Path, ...]
    xsec_pb: float | None = None


@dataclass(frozen=True)
class ReweightedConfig:
    """One sample with reweighting weights; SM, LIN and QUAD follow from DESIGN.md's formulas.

    Attributes:
        name: unique sample name.
        files: input files, resolved, sorted, globs expanded.
        xsec_pb: cross-section override, pb; None: taken from each file.
        sm_weight: weight id at c = 0.
        points: operator -> (weight id at c = +k, weight id at c = -k, k).
    """

    name: str
    files: tuple[Path, ...]
    xsec_pb: float | None
    sm_weight: str
    points: dict[str, tuple[str, str, float]]


@dataclass(frozen=True)
class SplitConfig:
    """Fractions of the deterministic train / validation / test split and its seed."""

    train: float = 0.6
    validation: float = 0.2
    test: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class TrainingConfig:
    """Hyperparameters of the VAE and VAE+NN models and of their training.

    The defaults are the reference paper's recipe (Adam at a learning rate of 5e-4, batch size
    32, encoder 20-10-7 with a mirrored decoder, latent size 3, LeakyReLU with the Keras slope
    0.3, classifier Dense 50 linear then Dense 1 hard-sigmoid). The early stopping patience
    (10 epochs), beta (0.001) and the BCE weight (1) are this tool's choices: the paper's
    authors scanned beta, and with min-max scaled inputs (per-event MSE ~0.01) beta = 1 makes
    the KL term dominate, which collapses the latent space (KLD -> 0, every event encoded
    alike).

    Attributes:
        optimizer: "adam".
        learning_rate: Adam step size.
        epochs: maximum number of training epochs.
        patience: early stopping: stop after this many epochs without a lower validation loss
            (the best weights are kept).
        batch_size: events per training batch (SM batch and, for VAE+NN, mixed batch).
        latent_dim: size of the latent space, 3..7.
        hidden_layers: widths of the encoder's Dense layers, input side first; the decoder
            uses them in reverse order.
        beta: weight of the per-event KL divergence in the VAE loss MSE + beta * KLD.
        bce_weight: VAE+NN: weight of the classifier's binary cross-entropy added to the VAE
            loss.
        classifier_units: VAE+NN: width of the classifier's linear Dense layer.
        leaky_relu_alpha: negative slope of the LeakyReLU activations.
        seed: seed of the weight initialisation and of the latent sampling.
        data_parallel: under MPI with N > 1 ranks, train each model on all ranks, each
            computing the gradient of 1/N of every global batch (`batch_size` events), the
            gradients summed with one Allreduce per step (`vbsad_batch.models.data_parallel`):
            the same training as on one rank up to float rounding. False (default): the models
            of the grid are trained one per rank (task parallel). Without MPI it changes
            nothing. Not part of a model's key: how many processes computed a training does not
            make it another model.
    """

    optimizer: Literal["adam"] = "adam"
    learning_rate: float = 5e-4
    epochs: int = 200
    patience: int = 10
    batch_size: int = 32
    latent_dim: int = 3
    hidden_layers: tuple[int, ...] = (20, 10, 7)
    beta: float = 0.001
    bce_weight: float = 1.0
    classifier_units: int = 50
    leaky_relu_alpha: float = 0.3
    seed: int = 0
    data_parallel: bool = False


RegionFrom = Literal["validation", "test"]
"""Where the scan chooses each limit's region: `ScanConfig.region_from`."""

ModelKind = Literal["vae", "vae_nn"]
MODEL_KINDS: tuple[ModelKind, ...] = ("vae", "vae_nn")
"""The models: the VAE trained on SM events, and the VAE+NN with its classifier."""

LATENT_DIM_RANGE: tuple[int, int] = (3, 7)
"""Allowed latent sizes (inclusive), as studied by the reference paper."""

SCORE_COLUMNS: dict[str, tuple[str, ...]] = {
    "vae": ("mse", "kld"),
    "vae_nn": ("mse", "kld", "score"),
}
"""Score columns of `vbsad score` per model kind (higher: more anomalous)."""


@dataclass(frozen=True)
class ScanConfig:
    """Settings of the sensitivity scans (`vbsad scan`, `vbsad_batch.scan.driver`).

    The defaults: the paper's 3 sigma; a region is admissible with at least 10 SM Monte Carlo
    events (relative MC error of S about 1/sqrt(10) ~ 30%, beyond which the proxy
    sigma = |c L + c^2 Q| / sqrt(S) chases fluctuations) and an SM yield of at least 1 event
    (below it sqrt(S) is no Gaussian width); 100 bootstrap replicas (an uncertainty on the
    uncertainty of ~7%). A VAE is scored by its reconstruction MSE, as in the paper; a VAE+NN
    by its classifier output.

    Attributes:
        significance: z at which the limits are set (proxy sigma and Asimov Z).
        min_sm_mc_events: admissible region: minimum number of SM Monte Carlo events in it.
        min_sm_yield: admissible region: minimum SM yield in it, events at the luminosity.
        bootstrap_replicas: bootstrap replicas of the Monte Carlo uncertainty (0: none).
        bootstrap_chunk: replicas per unit of work distributed over the MPI ranks (the
            results do not depend on it).
        seed: bootstrap seed.
        interval_bins: number of score bins of the binned likelihood of the 95% CL interval.
        curve_points: rows per (model, operator) curve in curves.parquet, evenly spaced in
            threshold rank plus the thresholds of the limits (0: every distinct threshold).
        vae_scores: score columns scanned for a VAE ("mse", "kld").
        vae_nn_scores: score columns scanned for a VAE+NN ("score", "mse", "kld").
        region_from: "validation": each limit's region is chosen on the validation events and
            the limit quoted with the test events in that region (no peeking: a threshold
            placed between test events cannot tune L and Q); "test": both on the test events,
            the reference paper's method. The table states which and shows the other beside.
    """

    significance: float = 3.0
    min_sm_mc_events: int = 10
    min_sm_yield: float = 1.0
    bootstrap_replicas: int = 100
    bootstrap_chunk: int = field(default=10, metadata={"changes_outputs": False})
    seed: int = 0
    interval_bins: int = 20
    curve_points: int = 2000
    vae_scores: tuple[str, ...] = ("mse",)
    vae_nn_scores: tuple[str, ...] = ("score",)
    region_from: RegionFrom = "validation"

    def output_settings(self) -> dict[str, Any]:
        """The settings the scan's outputs depend on (every field but those marked
        ``changes_outputs: False``, e.g. how the work is cut into items), as JSON data."""
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
            for f in fields(self)
            if f.metadata.get("changes_outputs", True)
        }

    def score_columns(self, kind: str) -> tuple[str, ...]:
        """The score columns scanned for a model of `kind` ("vae" or "vae_nn")."""
        if kind == "vae":
            return self.vae_scores
        if kind == "vae_nn":
            return self.vae_nn_scores
        raise ValueError(f"unknown model kind {kind!r}: expected 'vae' or 'vae_nn'")


@dataclass(frozen=True, order=True)
class ModelSpec:
    """One model of the analysis: what tells it apart from the others of the grid.

    Attributes:
        kind: "vae" or "vae_nn".
        latent_dim: latent space size.
        seed: seed of its weight initialisation and sampling.
        training_operator: the operator of its mixed training set (VAE+NN), else None.
    """

    kind: ModelKind
    latent_dim: int
    seed: int
    training_operator: str | None = None

    @property
    def name(self) -> str:
        """Its directory name: `<kind>_latent<k>[_<operator>][_seed<s>]` (no suffix for seed
        0, so that a single model keeps the name it always had)."""
        name = f"{self.kind}_latent{self.latent_dim}"
        if self.training_operator is not None:
            name += f"_{self.training_operator}"
        return name + (f"_seed{self.seed}" if self.seed != 0 else "")

    @property
    def group(self) -> str:
        """Its name without the seed: the models of one group differ only by their seed."""
        return dataclasses.replace(self, seed=0).name

    @classmethod
    def from_name(cls, name: str) -> ModelSpec | None:
        """The model a directory name stands for (the inverse of `name`), or None."""
        match = _MODEL_NAME.fullmatch(name)
        if match is None:
            return None
        kind, latent, op, seed = match.groups()
        if (kind == "vae_nn") != (op is not None):
            return None
        return cls(kind, int(latent), int(seed or 0), op)  # type: ignore[arg-type]


_MODEL_NAME = re.compile(r"(vae|vae_nn)_latent(\d+)(?:_(?!seed\d+$)(.+?))?(?:_seed(\d+))?")


@dataclass(frozen=True)
class ModelGrid:
    """The grid of models: every combination of these is trained, scored and scanned.

    Attributes:
        latent_dims: latent sizes (3..7).
        seeds: training seeds.
        training_operators: operators of the VAE+NN's mixed training set (empty: no VAE+NN).
    """

    latent_dims: tuple[int, ...] = (3,)
    seeds: tuple[int, ...] = (0,)
    training_operators: tuple[str, ...] = ()


@dataclass(frozen=True)
class AnalysisConfig:
    """A validated analysis configuration (see the module docstring for the TOML schema).

    Attributes:
        path: the config file, resolved.
        luminosity_fb: integrated luminosity, fb^-1.
        selection: selection expression (`selection_expr` turns it into a polars expression).
        features: model inputs.
        log_features: features that get log10 (subset of `features`).
        split: split fractions and seed.
        training: model and training hyperparameters.
        scan: settings of the sensitivity scans.
        grid: the grid of models (latent sizes, seeds, training operators); `training` holds
            the first latent size and seed.
        output_dir: where the stages write, resolved.
        samples: separately generated samples.
        reweighted: reweighted samples.
        declared_operators: the `operators` list, in file order.
        slurm: the resources of the batch jobs of `vbsad submit` (`vbsad_batch.config.slurm`);
            no stage's output depends on them.
    """

    path: Path
    luminosity_fb: float = 350.0
    selection: str = DEFAULT_SELECTION
    features: tuple[str, ...] = DEFAULT_FEATURES
    log_features: tuple[str, ...] = ENERGY_LIKE
    split: SplitConfig = field(default_factory=SplitConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    scan: ScanConfig = field(default_factory=ScanConfig)
    grid: ModelGrid = field(default_factory=ModelGrid)
    output_dir: Path = Path("vbsad-output")
    samples: tuple[SampleConfig, ...] = ()
    reweighted: tuple[ReweightedConfig, ...] = ()
    declared_operators: tuple[str, ...] = ()
    slurm: SlurmConfig = field(default_factory=SlurmConfig)

    @property
    def training_operator(self) -> str | None:
        """The (first) operator of the VAE+NN's mixed training set, or None."""
        return self.grid.training_operators[0] if self.grid.training_operators else None

    def models(
        self,
        kinds: Sequence[ModelKind] = MODEL_KINDS,
        *,
        latent_dims: Sequence[int] | None = None,
        seeds: Sequence[int] | None = None,
        training_operators: Sequence[str] | None = None,
    ) -> list[ModelSpec]:
        """The models of the grid of the given kinds, in table order (kind, operator, latent
        size, seed); a VAE+NN only with a training operator. Given lists replace the grid's.
        """
        latents = self.grid.latent_dims if latent_dims is None else tuple(latent_dims)
        seed_list = self.grid.seeds if seeds is None else tuple(seeds)
        ops = self.grid.training_operators if training_operators is None else training_operators
        specs: list[ModelSpec] = []
        for kind in MODEL_KINDS:
            if kind not in kinds:
                continue
            operators: tuple[str | None, ...] = (None,) if kind == "vae" else tuple(ops)
            specs += [
                self.model_spec(kind, latent, seed, op)
                for op in operators
                for latent in latents
                for seed in seed_list
            ]
        return specs

    def model_spec(
        self,
        kind: ModelKind,
        latent_dim: int | None = None,
        seed: int | None = None,
        training_operator: str | None = None,
    ) -> ModelSpec:
        """One model: the given values, else the config's first ones.

        Raises:
            ValueError: an unknown kind, a VAE+NN without a training operator, a latent size
                outside `LATENT_DIM_RANGE`.
        """
        if kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {kind!r}: expected 'vae' or 'vae_nn'")
        latent = self.training.latent_dim if latent_dim is None else latent_dim
        low, high = LATENT_DIM_RANGE
        if not low <= latent <= high:
            raise ValueError(f"latent_dim must be in {low}..{high}, got {latent}")
        op = None
        if kind == "vae_nn":
            op = self.training_operator if training_operator is None else training_operator
            if op is None:
                raise ValueError(f"{self.path}: model 'vae_nn' needs `training_operator`")
        return ModelSpec(kind, latent, self.training.seed if seed is None else seed, op)

    def input_files(self) -> tuple[Path, ...]:
        """Every input file of the samples and reweighted samples, sorted, each once."""
        files = {f for s in self.samples for f in s.files}
        files.update(f for rw in self.reweighted for f in rw.files)
        return tuple(sorted(files))

    def operators(self) -> tuple[str, ...]:
        """All operators of the analysis, sorted."""
        ops = set(self.declared_operators)
        for sample in self.samples:
            ops.update(sample.operators)
        for rw in self.reweighted:
            ops.update(rw.points)
        return tuple(sorted(ops))
