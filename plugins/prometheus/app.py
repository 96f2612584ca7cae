"""Loads the plugin from a checkout: ``mosfw run -p plugins/prometheus``
(installed, ``pip install ./plugins/prometheus``, it is ``-p prometheus``)."""

from .mosfw_prometheus import mosfw_addoption, mosfw_configure, mosfw_stats_update

__all__ = ["mosfw_addoption", "mosfw_configure", "mosfw_stats_update"]
