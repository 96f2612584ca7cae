"""The midstat app as an installed package, ``mosfw_midstat``: ``mosfw run -p midstat``
loads :mod:`mosfw_midstat.app` (the ``mosfw.plugins`` entry point ``midstat``);
from a checkout, ``-p samples/midstat`` loads the same app.py."""
