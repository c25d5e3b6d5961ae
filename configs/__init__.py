"""The bundled YAML configs (robots/, deployments/, training/), installed as the package `hearth_configs`.

Read them with `importlib.resources.files("hearth_configs")` (agent/config.py, robots/config.py), never through a path
relative to the source tree: in a wheel install there is no source tree.
"""
