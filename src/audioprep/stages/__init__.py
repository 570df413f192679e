"""The stages: one module per stage, found by :mod:`audioprep.core.registry`.

Stages outside this package register through the ``audioprep.stages`` entry-point group
(see docs/adding-a-stage.md).
"""
