"""Text tokenizer used by the π₀.₅ prompt: one class over two file formats.

Real π₀.₅ checkpoints use the PaliGemma SentencePiece model (``tokenizer.model``, or the equivalent Hugging Face
``tokenizer.json``); our small ``sim-small`` model uses the household byte-level BPE shipped in
``assets/household_bpe.json``. Both expose the same ids for BOS, EOS and PAD so the prompt code and the model never
care which one they got. BOS/EOS are always added by us (never by a file's post-processor), so the same call yields
the same ids whichever backend is loaded.
"""

from __future__ import annotations

import abc
import functools
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

HF_FILENAME = "tokenizer.json"
SENTENCEPIECE_FILENAME = "tokenizer.model"
HOUSEHOLD_ASSET = Path(__file__).parent / "assets" / "household_bpe.json"

# Special-token names, Gemma's first; the household BPE uses Gemma's layout (<pad>=0, <eos>=1, <bos>=2).
_BOS_NAMES = ("<bos>", "<s>", "[BOS]")
_EOS_NAMES = ("<eos>", "</s>", "[EOS]")
_PAD_NAMES = ("<pad>", "[PAD]")
_IMAGE_PLACEHOLDERS = ("<image>",)
# Household tokenizer: the trailing ids reserved for FAST action tokens carry this prefix.
ACTION_TOKEN_PREFIX = "<act_"


class TokenizerLoadError(ValueError):
    """The file or folder does not hold a tokenizer we can read (or lacks BOS/EOS)."""


class _Backend(abc.ABC):
    """What TextTokenizer needs from a concrete tokenizer library."""

    bos_id: int
    eos_id: int
    pad_id: int
    vocab_size: int
    special_ids: frozenset[int]

    @abc.abstractmethod
    def encode(self, text: str) -> list[int]: ...

    @abc.abstractmethod
    def decode(self, ids: list[int]) -> str: ...

    @abc.abstractmethod
    def id_to_piece(self, token_id: int) -> str | None: ...

    @abc.abstractmethod
    def save(self, folder: Path) -> Path: ...


class _HFBackend(_Backend):
    """A Hugging Face ``tokenizers`` JSON file (our household BPE, or PaliGemma's tokenizer.json)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # the library raises a bare Exception on malformed JSON
            raise TokenizerLoadError(f"{path}: not a tokenizers JSON file ({exc})") from exc
        self._path = path
        vocab = self._tok.get_vocab(with_added_tokens=True)
        self.vocab_size = self._tok.get_vocab_size(with_added_tokens=True)
        # PaliGemma's tokenizer.json appends <image> (id 257152) after the 257152 text ids; image features replace
        # it before the LM, which has no row for it. Counting it would make the vocabulary one larger than the
        # model's LM head (and than tokenizer.model), and put FAST id 0 on the image placeholder.
        if any(vocab.get(name) == self.vocab_size - 1 for name in _IMAGE_PLACEHOLDERS):
            self.vocab_size -= 1
        self.bos_id = _find_special(vocab, _BOS_NAMES, "BOS", path)
        self.eos_id = _find_special(vocab, _EOS_NAMES, "EOS", path)
        try:
            self.pad_id = _find_special(vocab, _PAD_NAMES, "PAD", path)
        except TokenizerLoadError:
            # openpi pads with id 0 and masks it out; the value never reaches attention.
            self.pad_id = 0
        self.special_ids = frozenset(
            token_id for token_id, added in self._tok.get_added_tokens_decoder().items() if added.special
        ) | {self.bos_id, self.eos_id, self.pad_id}

    def encode(self, text: str) -> list[int]:
        # add_special_tokens=False: PaliGemma's tokenizer.json has a post-processor that would add <bos> itself.
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)

    def id_to_piece(self, token_id: int) -> str | None:
        return self._tok.id_to_token(token_id)

    def save(self, folder: Path) -> Path:
        target = folder / HF_FILENAME
        self._tok.save(str(target))
        return target


class _SentencePieceBackend(_Backend):
    """A SentencePiece ``tokenizer.model`` (the real PaliGemma vocabulary when a user has it)."""

    def __init__(self, path: Path) -> None:
        import sentencepiece

        self._proto = path.read_bytes()
        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self._proto)
        except Exception as exc:  # RuntimeError / OSError depending on the failure
            raise TokenizerLoadError(f"{path}: not a SentencePiece model ({exc})") from exc
        self.vocab_size = int(self._sp.get_piece_size())
        self.bos_id = int(self._sp.bos_id())
        self.eos_id = int(self._sp.eos_id())
        if self.bos_id < 0 or self.eos_id < 0:
            raise TokenizerLoadError(
                f"{path}: SentencePiece model has no BOS/EOS (bos={self.bos_id}, eos={self.eos_id})"
            )
        pad = int(self._sp.pad_id())
        self.pad_id = pad if pad >= 0 else 0
        self.special_ids = frozenset(i for i in range(self.vocab_size) if self._sp.is_control(i)) | {
            self.bos_id,
            self.eos_id,
            self.pad_id,
        }

    def encode(self, text: str) -> list[int]:
        return [int(i) for i in self._sp.encode(text, out_type=int)]

    def decode(self, ids: list[int]) -> str:
        return self._sp.decode([i for i in ids if i not in self.special_ids])

    def id_to_piece(self, token_id: int) -> str | None:
        return self._sp.id_to_piece(token_id)

    def save(self, folder: Path) -> Path:
        target = folder / SENTENCEPIECE_FILENAME
        target.write_bytes(self._proto)
        return target


def _find_special(vocab: dict[str, int], names: Sequence[str], role: str, path: Path) -> int:
    for name in names:
        if name in vocab:
            return int(vocab[name])
    raise TokenizerLoadError(f"{path}: no {role} token (looked for {', '.join(names)})")


class TextTokenizer:
    """Text ↔ ids for prompts and System-2 subtasks, independent of the underlying file format."""

    def __init__(self, backend: _Backend, source: Path | None = None) -> None:
        self._backend = backend
        self.source = source
        self.bos_id: int = backend.bos_id
        self.eos_id: int = backend.eos_id
        self.pad_id: int = backend.pad_id
        self.vocab_size: int = backend.vocab_size

    @classmethod
    def load(cls, path: str | Path) -> TextTokenizer:
        """Load ``tokenizer.json`` / ``*.json`` (HF tokenizers) or ``tokenizer.model`` / ``*.model`` (SentencePiece).

        ``path`` may also be a folder (a checkpoint); ``tokenizer.json`` is preferred there because our own
        checkpoints write it, and ``tokenizer.model`` is used otherwise.
        """
        path = Path(path)
        if path.is_dir():
            for name in (HF_FILENAME, SENTENCEPIECE_FILENAME):
                if (path / name).is_file():
                    return cls.load(path / name)
            raise TokenizerLoadError(f"{path}: folder has neither {HF_FILENAME} nor {SENTENCEPIECE_FILENAME}")
        if not path.is_file():
            raise TokenizerLoadError(f"{path}: no such tokenizer file")
        if path.suffix == ".json":
            backend: _Backend = _HFBackend(path)
        elif path.suffix == ".model":
            backend = _SentencePieceBackend(path)
        else:
            raise TokenizerLoadError(f"{path}: unknown tokenizer file type (expected .json or .model)")
        return cls(backend, source=path)

    def save(self, folder: str | Path) -> Path:
        """Write the tokenizer into ``folder`` under its canonical name; returns the file written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return self._backend.save(folder)

    @property
    def kind(self) -> str:
        """``"tokenizers"`` or ``"sentencepiece"``: which file format this tokenizer came from."""
        return "sentencepiece" if isinstance(self._backend, _SentencePieceBackend) else "tokenizers"

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        ids = self._backend.encode(text)
        if add_bos:
            ids = [self.bos_id, *ids]
        if add_eos:
            ids = [*ids, self.eos_id]
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text for ``ids`` with BOS/EOS/PAD and other special tokens (e.g. reserved action ids) left out."""
        clean = [int(i) for i in ids]
        bad = [i for i in clean if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids outside the vocabulary [0, {self.vocab_size}): {bad[:8]}")
        return self._backend.decode(clean)

    def decode_until_eos(self, ids: Sequence[int]) -> str:
        """Decode a generated sequence up to (not including) the first EOS, as System 2 does."""
        clean = [int(i) for i in ids]
        if self.eos_id in clean:
            clean = clean[: clean.index(self.eos_id)]
        return self.decode(clean)

    def id_to_piece(self, token_id: int) -> str | None:
        """The vocabulary entry for one id (for debugging and for locating reserved ids)."""
        return self._backend.id_to_piece(int(token_id))

    @property
    def reserved_action_ids(self) -> range:
        """Trailing ids that hold nothing but placeholders for FAST action tokens (empty if the file has none).

        The household BPE reserves its last 1024 ids; for PaliGemma this is empty and callers choose the offset
        (openpi's π₀-FAST maps onto the ids just before the last 128).
        """
        count = 0
        for token_id in range(self.vocab_size - 1, -1, -1):
            piece = self.id_to_piece(token_id)
            if piece is None or not piece.startswith(ACTION_TOKEN_PREFIX):
                break
            count += 1
        return range(self.vocab_size - count, self.vocab_size)

    def __repr__(self) -> str:
        return (
            f"TextTokenizer(kind={self.kind!r}, vocab_size={self.vocab_size}, bos={self.bos_id}, "
            f"eos={self.eos_id}, pad={self.pad_id}, source={str(self.source) if self.source else None!r})"
        )


@functools.cache
def household_tokenizer() -> TextTokenizer:
    """The small household BPE shipped with hearth (trained by ``policy.tokenizers.household``).

    Cached: the tokenizer has no mutating methods, and policies, datasets and tests all ask for it.
    """
    if not HOUSEHOLD_ASSET.is_file():
        raise TokenizerLoadError(
            f"{HOUSEHOLD_ASSET} is missing; rebuild it with `python -m policy.tokenizers.household`"
        )
    return TextTokenizer.load(HOUSEHOLD_ASSET)


def copy_tokenizer_file(src: str | Path, folder: str | Path) -> Path:
    """Copy a tokenizer file into a checkpoint folder under its canonical name (no re-serialisation)."""
    src = Path(src)
    name = SENTENCEPIECE_FILENAME if src.suffix == ".model" else HF_FILENAME
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(src, folder / name))
