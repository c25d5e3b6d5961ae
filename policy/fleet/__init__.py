"""System 1 on Ray Serve: many policy replicas (one per GPU, or CPU replicas) behind one WebSocket address.

Optional (`pip install hearth[fleet]`). `config.py` is importable without Ray (the CLI validates flags before
starting anything); `model.py`, `ingress.py` and `app.py` need `ray[serve]`.
"""
