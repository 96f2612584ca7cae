"""Plugins shipped with mosfw (load with ``-p NAME``)."""
