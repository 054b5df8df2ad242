"""The report: figures, index.html and summary.md from the outputs of every stage.

Modules:

- `inputs`: what the report is made from: the stage outputs of a config and what is missing;
- `figures`: the plan of the figures (`figure_tasks`) and their captions;
- `figure_observables`, `figure_models` (reconstruction, scores, score versus mjj),
  `figure_scan` (sigma(c)), `figure_training`: the figures, one module per kind;
- `figure_data` (the datasets and scores they read), `figure_histograms` (binning and
  normalisation), `figure_style` (style, colours, labels, axes): what the figures share;
- `pages`: index.html and summary.md;
- `writer`: the report stage (`vbsad report`).
"""
