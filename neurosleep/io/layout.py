"""The run-file layout shared by writer and reader: names, dtypes, chunk sizes.

docs/run-file.md is the prose version of this module; keep them in step.
"""

from __future__ import annotations

import h5py
import numpy as np

FORMAT = "neurosleep-run"
FORMAT_VERSION = 1
# Low bound "earliest": the superblock carries no file-consistency flags, so a file whose writer
# was killed (or is still writing) opens in any reader; with a "v110" low bound HDF5 refuses such
# files ("file is already open for write") until `h5clear -s`. High bound "v110": nothing newer
# than HDF5 1.10 (h5py >= 3.16 with "latest" writes files HDF5 1.14 cannot read).
LIBVER = ("earliest", "v110")

STATUSES = ("running", "complete", "failed", "interrupted")

SORTING = h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype="u1")
STRING = h5py.string_dtype()

PHASE_DTYPE = np.dtype(
    [
        ("index", "i8"),
        ("name", STRING),
        ("kind", STRING),
        ("task", "i8"),  # 0-based task index, -1 when the phase belongs to no task
        ("start_time", "f8"),  # ms
        ("stop_time", "f8"),  # ms
        ("wall_seconds", "f8"),
        ("status", STRING),
    ]
)
STAGE_DTYPE = np.dtype(  # /stages: the sub-phases of staged sleep phases, one row each
    [
        ("index", "i8"),
        ("phase", "i8"),  # the row of /phases this stage runs in
        ("step", "i8"),  # 0-based position in that phase: cycle × stages + stage
        ("cycle", "i8"),  # 0-based
        ("name", STRING),  # the stage's name
        ("kind", STRING),  # its sleep algorithm
        ("start_time", "f8"),  # ms
        ("stop_time", "f8"),  # ms
        ("wall_seconds", "f8"),
        ("status", STRING),
    ]
)
SCALAR_DTYPE = np.dtype([("phase", "i8"), ("name", STRING), ("value", "f8"), ("units", STRING)])

SPIKE_CHUNK = 65_536  # elements: 512 KiB of float64 per chunk
ROW_CHUNK_BYTES = 256 * 1024
