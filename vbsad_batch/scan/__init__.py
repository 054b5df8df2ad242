"""Scans: the smallest Wilson coefficient each model sees at 3 sigma, and its uncertainty.

Modules:

- `statistics`: the threshold scan and the limits (the paper's proxy sigma and the Asimov Z),
  sigma(c) curves; pure NumPy / SciPy on weighted scores;
- `contours`: two operators at once: the scan of a pair with its MIX term, 2D contours;
- `likelihood`: the expected 95% CL interval from a binned likelihood of the score;
- `bootstrap`: the Monte Carlo uncertainty of the limits by bootstrap replicas;
- `scores`: the scored models of an analysis and their score columns, as scan inputs;
- `tables`: the outputs: table.json / .csv / .md and the curves as Parquet;
- `driver`: the scan stage (`vbsad scan`): work items over MPI ranks, gathered and written.
"""
