"""A training-state tree as JSON plus a flat name -> tensor map, so it can be stored without pickle.

`encode` walks nested dicts/lists/tuples of tensors, NumPy arrays and JSON scalars (what `state_dict()` of a
model, an optimizer, a scheduler and an EMA hold, plus RNG states) and returns a JSON-able structure in which
each tensor is `{"$tensor": name}`; `decode` reverses it given the tensors. Markers keep what JSON would lose:
tuples (`betas`), non-string dict keys (optimizer state is keyed by parameter index), NumPy arrays and their
dtype (the NumPy RNG key), and floats JSON cannot spell (inf, nan). Tensors that share storage (tied weights)
are stored once each as independent copies, because safetensors refuses shared storage.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

TENSOR, NDARRAY, TUPLE, DICT, FLOAT = "$tensor", "$ndarray", "$tuple", "$dict", "$float"


def encode(tree: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """(JSON-able structure, tensors by name)."""
    tensors: dict[str, torch.Tensor] = {}
    seen_storage: set[int] = set()

    def add(value: torch.Tensor) -> str:
        name = f"t{len(tensors)}"
        tensor = value.detach().cpu()
        storage = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        if storage in seen_storage or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        elif storage != -1:
            seen_storage.add(storage)
        tensors[name] = tensor
        return name

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return {TENSOR: add(value)}
        if isinstance(value, np.ndarray):
            return {NDARRAY: add(torch.from_numpy(np.ascontiguousarray(value))), "dtype": value.dtype.str}
        if isinstance(value, np.generic):
            return walk(value.item())
        if isinstance(value, tuple):
            return {TUPLE: [walk(v) for v in value]}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            if all(isinstance(k, str) and not k.startswith("$") for k in value):
                return {k: walk(v) for k, v in value.items()}
            return {DICT: [[walk(k), walk(v)] for k, v in value.items()]}
        if isinstance(value, float) and not math.isfinite(value):
            return {FLOAT: repr(value)}
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise TypeError(f"training state holds a {type(value).__name__}, which cannot be stored without pickle")

    return walk(tree), tensors


def decode(structure: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The tree `encode` was given (tensors on whatever device `tensors` are)."""
    if isinstance(structure, list):
        return [decode(v, tensors) for v in structure]
    if not isinstance(structure, dict):
        return structure
    if TENSOR in structure:
        return tensors[structure[TENSOR]]
    if NDARRAY in structure:
        return tensors[structure[NDARRAY]].cpu().numpy().astype(np.dtype(structure["dtype"]), copy=False)
    if TUPLE in structure:
        return tuple(decode(v, tensors) for v in structure[TUPLE])
    if DICT in structure:
        return {decode(k, tensors): decode(v, tensors) for k, v in structure[DICT]}
    if FLOAT in structure:
        return float(structure[FLOAT])
    return {k: decode(v, tensors) for k, v in structure.items()}
