"""vbsad_batch: anomaly detection for vector boson scattering EFT studies.

Reading Les Houches Event files (the parser is native code, `vbsad_batch._native`):

>>> import pyarrow as pa
>>> from vbsad_batch import read_lhe
>>> stream = read_lhe("ssww_SM.lhe.gz")  # doctest: +SKIP
>>> table = pa.table(stream)  # doctest: +SKIP
>>> stream.info().n_events  # doctest: +SKIP
"""

from importlib import metadata as _metadata

from vbsad_batch.errors import LheParseError
from vbsad_batch.ingest.lhe import LheInfo, LheStream, lhe_info, read_lhe, read_lhe_particles

try:
    __version__: str = _metadata.version("vbsad_batch")
except _metadata.PackageNotFoundError:  # running from a source tree without installing
    from vbsad_batch._native import __version__

__all__ = [
    "LheInfo",
    "LheParseError",
    "LheStream",
    "__version__",
    "lhe_info",
    "read_lhe",
    "read_lhe_particles",
]
