"""The embedded demo analysis: its sizes (`DemoSettings`) and its analysis config (TOML)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from vbsad_batch.demo.lhe_writer import sample_name
from vbsad_batch.demo.toy_events import DEFAULT_OPERATORS, check_operators

__all__ = ["DEMO_DEFAULT", "DEMO_QUICK", "DemoSettings", "demo_config_toml"]


@dataclass(frozen=True, slots=True)
class DemoSettings:
    """Sizes and settings of the embedded demo analysis (`vbsad run` without a config)."""

    n_events: int  # SM events
    eft_events: int  # events per LIN / QUAD file
    epochs: int
    patience: int
    batch_size: int
    learning_rate: float
    bootstrap_replicas: int


#: The default demo: a few minutes on 2 cores.
DEMO_DEFAULT = DemoSettings(
    n_events=40_000,
    eft_events=10_000,
    epochs=200,
    patience=10,
    batch_size=256,
    learning_rate=2e-3,
    bootstrap_replicas=20,
)
#: `--quick`: a smoke run of about a minute (too few events and epochs for physics); the
#: optimiser settings are the default's.
DEMO_QUICK = replace(
    DEMO_DEFAULT, n_events=4_000, eft_events=1_000, epochs=4, patience=2, bootstrap_replicas=0
)


def demo_config_toml(
    data_dir: str,
    settings: DemoSettings,
    *,
    operators: Sequence[str] = DEFAULT_OPERATORS,
    training_operator: str = "cW",
) -> str:
    """The analysis config (TOML) of the demo, its samples in ``data_dir`` (relative to the
    config file) and its outputs next to the config file."""
    ops = check_operators(operators)
    quoted = ", ".join(f'"{op}"' for op in ops)
    lines = [
        "# The embedded demo analysis of `vbsad run`, written by vbsad_batch.demo.",
        "# TOY DATA for demonstration and testing, not a physics prediction: toy kinematics and",
        "# a toy EFT response (vbsad_batch.demo.eft_response). Edit a copy to start your own",
        "# analysis.",
        "",
        f"operators = [{quoted}]",
        "luminosity_fb = 350.0",
        f'training_operator = "{training_operator}"',
        'output_dir = "."',
        "# selection, features and log_features: the defaults (VBS selection, 14 observables)",
        "",
        "[split]",
        "train = 0.6",
        "validation = 0.2",
        "test = 0.2",
        "seed = 1",
        "",
        "[training]  # faster than the paper's recipe (batch 32, 200 epochs): a demo",
        f"learning_rate = {settings.learning_rate!r}",
        f"epochs = {settings.epochs}",
        f"patience = {settings.patience}",
        f"batch_size = {settings.batch_size}",
        "",
        "[scan]",
        f"bootstrap_replicas = {settings.bootstrap_replicas}",
        'vae_scores = ["mse", "kld"]  # both VAE scores: the KL divergence separates better here',
        "",
        "[[samples]]",
        'name = "ssww_demo_SM"',
        'component = "sm"',
        f'files = "{data_dir}/{sample_name("sm")}.lhe.gz"',
    ]
    for op in ops:
        for comp in ("lin", "quad"):
            lines += [
                "",
                "[[samples]]",
                f'component = "{comp}"',
                f'operator = "{op}"',
                f'files = "{data_dir}/{sample_name(comp, op)}.lhe.gz"',
            ]
    return "\n".join(lines) + "\n"
