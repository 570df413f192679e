"""The stages: one module per stage, found by :mod:`audioprep.core.registry`.

Folders named in ``AUDIOPREP_STAGES_PATH`` (``os.pathsep``-separated) are searched too, so a
stage module can be tried out (or tested) without copying it into the package.
"""

import os as _os

__path__ += [p for p in _os.environ.get("AUDIOPREP_STAGES_PATH", "").split(_os.pathsep) if p]  # noqa: F821, PLE0605
