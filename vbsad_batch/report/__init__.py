"""The report: figures, index.html and summary.md from the outputs of every stage.

Modules:

- `inputs`: what the report is made from: the stage outputs of a config and what is missing;
- `figures`: the figures (matplotlib, mplhep);
- `pages`: index.html and summary.md;
- `writer`: the report stage (`vbsad report`).
"""
