"""The tracker app as an installed package, ``mosfw_tracker``: ``mosfw run -p tracker``
loads :mod:`mosfw_tracker.app` (the ``mosfw.plugins`` entry point ``tracker``);
from a checkout, ``-p samples/tracker`` loads the same app.py."""
