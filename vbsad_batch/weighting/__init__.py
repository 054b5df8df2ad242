"""Weighting: expected yields of the EFT components, the split, and the model's datasets.

Modules:

- `yields`: per-event yields at a luminosity (polars), SM / LIN / QUAD from reweighting
  weights, the EFT combination, the yields table of `vbsad yields`;
- `split`: the deterministic train / validation / test split (a SplitMix64 hash);
- `datasets`: the datasets stage (`vbsad datasets`): Parquet datasets with yields + manifest.
"""
