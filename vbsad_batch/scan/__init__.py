"""Scans: the smallest Wilson coefficient each model sees at 3 sigma, and its uncertainty.

Modules:

- `statistics`: the threshold scan and the limits (the paper's proxy sigma and the Asimov Z),
  sigma(c) curves; pure NumPy / SciPy on weighted scores;
- `asimov`: the Asimov significance and the signals at which it reaches z;
- `sm_column`: what depends on the SM events of a score column only, computed once for every
  operator;
- `sm_sharing`: that SM side built by the MPI ranks that need it, its sort split between them;
- `contours`: two operators at once: the scan of a pair with its MIX term, 2D contours;
- `likelihood`: the expected 95% CL interval from a binned likelihood of the score;
- `bootstrap`: the Monte Carlo uncertainty of the limits by bootstrap replicas;
- `scores`: the scored models of an analysis and their score columns, as scan inputs;
- `tables`: the outputs: table.json / .csv / .md and the curves as Parquet;
- `work`: the work items and the worker that computes one;
- `schedule`: which rank computes which item (contiguous blocks: a rank reads only its files);
- `driver`: the scan stage (`vbsad scan`): work items over MPI ranks, gathered and written.
"""
