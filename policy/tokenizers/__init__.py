"""Prompt building (π₀.₅ format, byte-exact with openpi), text tokenizers, and the FAST action tokenizer.

Import the submodules directly (``policy.tokenizers.prompt``, ``.text``, ``.fast``); this package module stays
empty so importing it never pulls in scipy or the tokenizer libraries.
"""
