"""Train the small household BPE shipped as ``assets/household_bpe.json``.

Why our own tokenizer: the real PaliGemma vocabulary is gated and 257k entries (a 2k-wide embedding for a model
that only ever reads household prompts would dwarf ``sim-small``). The household BPE is byte-level, so any text
(coaching in any language, typos) still round-trips exactly, while the words that actually occur, the prompt
scaffolding and the state bins ``0``…``255`` are single tokens, which keeps prompts short on a CPU.

Layout (Gemma's special ids, so prompt code is backend-agnostic): ``<pad>``=0, ``<eos>``=1, ``<bos>``=2, then the
BPE vocabulary topped up with ``<unused_…>`` to ``BPE_VOCAB_SIZE`` ids, then ``RESERVED_ACTION_TOKENS`` placeholders ``<act_…>`` at the very end: FAST action ids map onto
those last ids (``FastTokenizer.to_text_ids``), so the LM head can predict actions without clobbering words.

Rebuild after editing ``vocabulary/*.txt``::

    python -m policy.tokenizers.household            # rewrites assets/household_bpe.json
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Iterator
from pathlib import Path

from policy.tokenizers.text import ACTION_TOKEN_PREFIX, HOUSEHOLD_ASSET

logger = logging.getLogger(__name__)

VOCABULARY_DIR = Path(__file__).parent / "vocabulary"
SPECIAL_TOKENS = ("<pad>", "<eos>", "<bos>")
BPE_VOCAB_SIZE = 2048  # specials + 256 byte symbols + merges, topped up with <unused_…> to exactly this many
RESERVED_ACTION_TOKENS = 1024  # FastTokenizer's default vocabulary size
STATE_BINS = 256
# The exact scaffolding of the π₀.₅ prompts (prompt.py) and of the paper's coaching record.
SCAFFOLDS = ("Task: ", ", State: ", ";\nAction: ", ";\nSubtask: ", "Policy: ", " → Relabeled: ")


def _read_lines(name: str) -> list[str]:
    lines = (VOCABULARY_DIR / name).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def read_word_sections() -> dict[str, list[str]]:
    """``words.txt`` as {section: entries}; word sections split on spaces, ``[coaching]`` keeps whole lines."""
    sections: dict[str, list[str]] = {}
    current = "misc"
    for line in _read_lines("words.txt"):
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        entries = [line] if current == "coaching" else line.split()
        sections.setdefault(current, []).extend(entries)
    return sections


def household_corpus(seed: int = 0, repeats: int = 4) -> Iterator[str]:
    """Deterministic training text: tasks, filled subtask templates, full prompts with state bins, coaching."""
    rng = random.Random(seed)
    tasks = _read_lines("tasks.txt")
    templates = _read_lines("subtasks.txt")
    words = read_word_sections()
    objects, places = words.get("objects", []), words.get("places", [])

    def fill(template: str) -> str:
        return template.replace("{object}", rng.choice(objects)).replace("{place}", rng.choice(places))

    def state(n: int) -> str:
        return " ".join(str(rng.randrange(-1, STATE_BINS)) for _ in range(n))

    for _ in range(repeats):
        yield from tasks
        yield from (t.capitalize() for t in tasks)
        for template in templates:
            for _ in range(3):
                text = fill(template)
                yield text
                yield text.capitalize()
        for entries in words.values():
            yield " ".join(entries)
            yield " ".join(e.capitalize() for e in entries)
        # Every bin value several times, in the context it appears in: after a space.
        bins = [str(b) for b in range(-1, STATE_BINS)]
        for _ in range(4):
            rng.shuffle(bins)
            yield "State: " + " ".join(bins)
        for task in tasks:
            subtask = fill(rng.choice(templates))
            dims = rng.choice((7, 8, 14, 16))
            yield f"Task: {task}, State: {state(dims)};\nSubtask: {subtask}"
            yield f"Task: {subtask}, State: {state(dims)};\nAction: "
            yield f"Policy: {subtask} → Relabeled: {fill(rng.choice(templates))}"
        yield from words.get("coaching", [])
        yield " ".join(SCAFFOLDS)


def train_household_tokenizer(
    out_path: str | Path | None = HOUSEHOLD_ASSET,
    bpe_vocab_size: int = BPE_VOCAB_SIZE,
    reserved_action_tokens: int = RESERVED_ACTION_TOKENS,
    seed: int = 0,
):
    """Train the byte-level BPE from ``vocabulary/`` and (optionally) write it; returns the ``tokenizers.Tokenizer``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(household_corpus(seed=seed), trainer=trainer)
    # The corpus runs out of repeated pairs before the cap; unused slots keep the id layout fixed, so editing the
    # vocabulary never moves the reserved action block or changes the model's embedding size.
    trained = tok.get_vocab_size()
    tok.add_special_tokens([f"<unused_{i}>" for i in range(bpe_vocab_size - trained)])
    tok.add_special_tokens([f"{ACTION_TOKEN_PREFIX}{i}>" for i in range(reserved_action_tokens)])
    for expected_id, name in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(name) != expected_id:
            raise RuntimeError(f"{name} got id {tok.token_to_id(name)}, expected {expected_id}")
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tok.save(str(out_path), pretty=False)
        logger.info("wrote %s (vocab %d)", out_path, tok.get_vocab_size())
    return tok


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Retrain the shipped household BPE tokenizer.")
    parser.add_argument("--out", type=Path, default=HOUSEHOLD_ASSET)
    parser.add_argument("--bpe-vocab-size", type=int, default=BPE_VOCAB_SIZE)
    parser.add_argument("--reserved-action-tokens", type=int, default=RESERVED_ACTION_TOKENS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    train_household_tokenizer(args.out, args.bpe_vocab_size, args.reserved_action_tokens)


if __name__ == "__main__":
    main()
