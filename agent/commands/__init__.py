"""One module per `hearth` subcommand. Each exposes a typer-compatible function named `command`.

Modules import heavy dependencies (torch, mujoco, streamlit) inside the function body so `hearth --help`
stays fast.
"""
