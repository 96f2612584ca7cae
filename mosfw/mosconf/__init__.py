"""The parts of :mod:`mosfw.config` (mos.conf), one concern per module:
defaults, errors, values, model (:class:`MosConfig`), parser. Import
from :mod:`mosfw.config`, the public surface."""
