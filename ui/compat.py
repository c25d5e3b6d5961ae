"""Streamlit API differences across the versions pyproject allows (>= 1.38), in one place.

Newer Streamlit replaces `components.v1.html` with `st.iframe` and `use_container_width` with `width`; both old
forms log deprecation warnings there (and will go), while older versions lack the new ones.
"""

from __future__ import annotations

import inspect
from typing import Any

import streamlit as st


def embed_html(html: str, height: int) -> None:
    """A full HTML page (with scripts) in an iframe of fixed height."""
    iframe = getattr(st, "iframe", None)
    if iframe is not None:
        iframe(html, height=height)
    else:
        import streamlit.components.v1 as components

        components.html(html, height=height)


def _takes_width(function: Any) -> bool:
    try:
        return "width" in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


FULL_WIDTH: dict[str, Any] = {"width": "stretch"} if _takes_width(st.button) else {"use_container_width": True}
