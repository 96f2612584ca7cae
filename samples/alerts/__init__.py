"""The alerts app as an installed package, ``mosfw_alerts``: ``mosfw run -p alerts``
loads :mod:`mosfw_alerts.app` (the ``mosfw.plugins`` entry point ``alerts``);
from a checkout, ``-p samples/alerts`` loads the same app.py."""
