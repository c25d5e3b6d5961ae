"""FAST action tokenizer (Pertsch et al. 2025), our own implementation.

Encode a normalized action chunk ``[H, D]``:
  1. DCT-II over time, orthonormal, per dimension (``scipy.fft.dct(norm="ortho", axis=0)``);
  2. multiply by ``scale`` and round to integers (the only lossy step);
  3. flatten the ``[H, D]`` coefficient matrix row-major: all dims' frequency 0, then frequency 1, ... so the
     high-frequency coefficients, nearly all zero for smooth motion, form long runs at the end;
  4. write each integer as one symbol and compress the symbol string with byte-pair encoding trained on a
     dataset's chunks (``tokenizers`` library).
Decoding inverts each step. A token sequence that does not decode to exactly ``H * D`` coefficients (truncated
generation, a stray text token, garbage) yields a ``FastDecodeResult`` with an ``error`` and no actions: the
reference returns an all-zero chunk there, which after unnormalization means "move to the middle of every joint's
range", the one thing a robot must not do silently.

FAST ids map onto the *last* ids of a text vocabulary (``text_id = text_vocab_size - 1 - fast_id``) so the VLM's LM
head can predict them; the household BPE reserves exactly that tail (``TextTokenizer.reserved_action_ids``).
Facts: Physical-Intelligence/openpi src/openpi/models/tokenizer.py (`FASTTokenizer`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FORMAT = "hearth-fast-tokenizer"
FORMAT_VERSION = 1
DEFAULT_FILENAME = "fast_tokenizer.json"
# Coefficients become characters of Unicode's Private Use Area: never whitespace, never touched by any normalizer.
_SYMBOL_BASE = 0xE000
_SYMBOL_LIMIT = 0xF8FF
# The alphabet covers |chunk| up to this many units of the normalized range at the fitted horizon, so quantile-
# normalized actions a bit beyond [-1, 1] still encode exactly.
_RANGE_HEADROOM = 1.5


@dataclass(frozen=True)
class FastDecodeResult:
    """Outcome of decoding: ``actions`` [H, D] float32 when ``ok``, otherwise ``None`` and a human ``error``."""

    actions: np.ndarray | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.actions is not None


def _dct(x: np.ndarray) -> np.ndarray:
    from scipy.fft import dct

    return dct(x, type=2, norm="ortho", axis=-2)


def _idct(c: np.ndarray) -> np.ndarray:
    from scipy.fft import idct

    return idct(c, type=2, norm="ortho", axis=-2)


def _check_chunks(chunks: np.ndarray, ndim: int, what: str) -> np.ndarray:
    arr = np.asarray(chunks)
    if arr.ndim != ndim:
        shape = "[N, H, D]" if ndim == 3 else "[H, D]"
        raise ValueError(f"{what} must have shape {shape}, got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty: shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    return arr


class FastTokenizer:
    """DCT + BPE action tokenizer; build with ``fit`` on normalized chunks, persist with ``save``/``load``."""

    def __init__(self, bpe, scale: float, coefficient_range: int, horizon: int, action_dim: int) -> None:
        self._bpe = bpe
        self.scale = float(scale)
        self.coefficient_range = int(coefficient_range)  # integer coefficients live in [-range, range]
        self.horizon = int(horizon)  # of the data it was fitted on; decode takes the actual one
        self.action_dim = int(action_dim)
        self._id_to_symbols: list[str] = [bpe.id_to_token(i) or "" for i in range(bpe.get_vocab_size())]

    # ------------------------------------------------------------------ building
    @classmethod
    def fit(cls, chunks: np.ndarray, vocab_size: int = 1024, scale: float = 10.0) -> FastTokenizer:
        """Train the BPE on ``chunks`` [N, H, D] (already normalized, roughly [-1, 1]).

        ``vocab_size`` is an upper bound: with little data the BPE stops early when no pair repeats.
        """
        from tokenizers import Tokenizer, models, trainers

        data = _check_chunks(chunks, 3, "chunks")
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a positive number, got {scale}")
        _, horizon, action_dim = data.shape
        coeffs = np.rint(_dct(data) * scale).astype(np.int64)
        observed = int(np.abs(coeffs).max())
        coefficient_range = max(observed, math.ceil(scale * math.sqrt(horizon) * _RANGE_HEADROOM))
        alphabet_size = 2 * coefficient_range + 1
        if _SYMBOL_BASE + alphabet_size - 1 > _SYMBOL_LIMIT:
            raise ValueError(
                f"coefficients up to ±{coefficient_range} need {alphabet_size} symbols; lower `scale` "
                f"or normalize the actions (max |coefficient| seen: {observed})"
            )
        if vocab_size < alphabet_size:
            raise ValueError(
                f"vocab_size={vocab_size} is smaller than the {alphabet_size} coefficient values "
                f"(±{coefficient_range} at scale {scale}, horizon {horizon}); raise vocab_size or lower scale"
            )
        alphabet = [chr(_SYMBOL_BASE + i) for i in range(alphabet_size)]
        bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            special_tokens=[],
            initial_alphabet=alphabet,
            limit_alphabet=alphabet_size,
            show_progress=False,
        )
        texts = [cls._symbols(c, coefficient_range) for c in coeffs]
        bpe.train_from_iterator(texts, trainer=trainer, length=len(texts))
        missing = [s for s in alphabet if bpe.token_to_id(s) is None]
        if missing:  # would make encode drop coefficients silently
            raise RuntimeError(f"BPE training lost {len(missing)} coefficient symbols")
        tok = cls(bpe, scale, coefficient_range, horizon, action_dim)
        logger.info(
            "fitted FAST tokenizer on %d chunks %dx%d: vocab %d, coefficients ±%d",
            len(data),
            horizon,
            action_dim,
            tok.vocab_size,
            coefficient_range,
        )
        return tok

    @staticmethod
    def _symbols(coeffs: np.ndarray, coefficient_range: int) -> str:
        flat = coeffs.reshape(-1) + (coefficient_range + _SYMBOL_BASE)
        return "".join(map(chr, flat.tolist()))

    # ------------------------------------------------------------------ properties
    @property
    def vocab_size(self) -> int:
        return len(self._id_to_symbols)

    # ------------------------------------------------------------------ encode / decode
    def coefficients(self, chunk: np.ndarray) -> np.ndarray:
        """The integer DCT coefficients [H, D] that ``encode`` compresses (clipped to the alphabet, with a warning)."""
        data = _check_chunks(chunk, 2, "chunk")
        coeffs = np.rint(_dct(data) * self.scale).astype(np.int64)
        r = self.coefficient_range
        if (np.abs(coeffs) > r).any():
            logger.warning(
                "chunk coefficient %d exceeds the tokenizer's range ±%d (is the chunk normalized?); clipped",
                int(np.abs(coeffs).max()),
                r,
            )
            coeffs = np.clip(coeffs, -r, r)
        return coeffs

    def encode(self, chunk: np.ndarray) -> list[int]:
        """Normalized chunk [H, D] → FAST token ids (each in ``[0, vocab_size)``)."""
        text = self._symbols(self.coefficients(chunk), self.coefficient_range)
        return list(self._bpe.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, chunks: np.ndarray) -> list[list[int]]:
        """``encode`` for chunks [N, H, D], using the library's batch path."""
        data = _check_chunks(chunks, 3, "chunks")
        texts = [self._symbols(self.coefficients(c), self.coefficient_range) for c in data]
        return [list(e.ids) for e in self._bpe.encode_batch(texts, add_special_tokens=False)]

    def decode(self, tokens: Sequence[int], horizon: int, action_dim: int) -> FastDecodeResult:
        """FAST ids → chunk [horizon, action_dim]; never raises on bad tokens, never invents a zero chunk."""
        if horizon <= 0 or action_dim <= 0:
            return FastDecodeResult(None, f"horizon and action_dim must be positive, got {horizon}x{action_dim}")
        ids: list[int] = []
        for position, token in enumerate(tokens):
            try:
                value = int(token)
            except (TypeError, ValueError):
                return FastDecodeResult(None, f"token {token!r} at position {position} is not an integer")
            if not 0 <= value < self.vocab_size:
                return FastDecodeResult(
                    None,
                    f"token {value} at position {position} is not a FAST id (vocabulary is 0..{self.vocab_size - 1})",
                )
            ids.append(value)
        if not ids:
            return FastDecodeResult(None, "empty token sequence")
        symbols = "".join(self._id_to_symbols[i] for i in ids)
        expected = horizon * action_dim
        if len(symbols) != expected:
            hint = "truncated?" if len(symbols) < expected else "extra tokens?"
            return FastDecodeResult(
                None,
                f"tokens decode to {len(symbols)} coefficients, expected {horizon}x{action_dim}={expected} ({hint})",
            )
        flat = np.fromiter((ord(s) for s in symbols), dtype=np.int64, count=expected)
        coeffs = (flat - (_SYMBOL_BASE + self.coefficient_range)).reshape(horizon, action_dim)
        actions = _idct(coeffs.astype(np.float64) / self.scale).astype(np.float32)
        return FastDecodeResult(actions)

    # ------------------------------------------------------------------ text-vocabulary mapping
    def _check_text_vocab(self, text_vocab_size: int) -> None:
        if text_vocab_size < self.vocab_size:
            raise ValueError(
                f"text vocabulary ({text_vocab_size}) is smaller than the FAST vocabulary ({self.vocab_size})"
            )

    def to_text_ids(self, fast_ids: Iterable[int], text_vocab_size: int) -> list[int]:
        """FAST id ``k`` → text id ``text_vocab_size - 1 - k`` (the vocabulary's last ids, counting backwards).

        With the household BPE that is its reserved ``<act_…>`` block. With PaliGemma (257152 ids) pass
        ``257152 - 128`` to land where openpi's π₀-FAST puts them (``257023 - k``, skipping the ``<seg>`` tokens).
        """
        self._check_text_vocab(text_vocab_size)
        out = []
        for k in fast_ids:
            k = int(k)
            if not 0 <= k < self.vocab_size:
                raise ValueError(f"{k} is not a FAST id (vocabulary is 0..{self.vocab_size - 1})")
            out.append(text_vocab_size - 1 - k)
        return out

    def from_text_ids(self, text_ids: Iterable[int], text_vocab_size: int) -> list[int]:
        """Inverse of ``to_text_ids``; a text id outside the action block raises ``ValueError``."""
        self._check_text_vocab(text_vocab_size)
        lowest = text_vocab_size - self.vocab_size
        out = []
        for t in text_ids:
            t = int(t)
            if not lowest <= t < text_vocab_size:
                raise ValueError(f"text id {t} is not an action token (action ids are {lowest}..{text_vocab_size - 1})")
            out.append(text_vocab_size - 1 - t)
        return out

    def decode_text_ids(
        self, text_ids: Sequence[int], text_vocab_size: int, horizon: int, action_dim: int
    ) -> FastDecodeResult:
        """What the LM head generated (action ids in text space) → chunk, with mapping errors in the result."""
        try:
            fast_ids = self.from_text_ids(text_ids, text_vocab_size)
        except ValueError as exc:
            return FastDecodeResult(None, str(exc))
        return self.decode(fast_ids, horizon, action_dim)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "scale": self.scale,
            "coefficient_range": self.coefficient_range,
            "horizon": self.horizon,
            "action_dim": self.action_dim,
            "bpe": json.loads(self._bpe.to_str()),
        }

    def save(self, path: str | Path) -> Path:
        """Write one JSON file; a folder gets ``fast_tokenizer.json`` inside it. Returns the file written."""
        path = Path(path)
        if path.is_dir():
            path = path / DEFAULT_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FastTokenizer:
        from tokenizers import Tokenizer

        path = Path(path)
        if path.is_dir():
            path = path / DEFAULT_FILENAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a FAST tokenizer file ({exc})") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file")
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported version {data.get('version')} (this code reads {FORMAT_VERSION})")
        try:
            bpe = Tokenizer.from_str(json.dumps(data["bpe"]))
            return cls(bpe, data["scale"], data["coefficient_range"], data["horizon"], data["action_dim"])
        except Exception as exc:  # KeyError/TypeError for missing fields; tokenizers raises a bare Exception
            raise ValueError(f"{path}: corrupt FAST tokenizer ({exc})") from exc

    def __repr__(self) -> str:
        return (
            f"FastTokenizer(vocab_size={self.vocab_size}, scale={self.scale}, "
            f"coefficients=±{self.coefficient_range}, fitted_on={self.horizon}x{self.action_dim})"
        )
