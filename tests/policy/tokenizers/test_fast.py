"""FAST action tokenizer: round trips, error results instead of zero chunks, persistence, text-id mapping."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from policy.tokenizers.fast import FastDecodeResult, FastTokenizer
from policy.tokenizers.synthetic import smooth_chunks
from policy.tokenizers.text import household_tokenizer

SCALE = 10.0
# Rounding each orthonormal-DCT coefficient moves it by at most 0.5/scale, and the inverse DCT preserves the L2
# norm, so the RMS error over time of any (unclipped) dimension is at most 0.5/scale: a bound, not a hope.
RMS_BOUND = 0.5 / SCALE
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def tok7() -> FastTokenizer:
    return FastTokenizer.fit(smooth_chunks(300, 50, 7, seed=1), vocab_size=1024, scale=SCALE)


@pytest.fixture(scope="module")
def tok14() -> FastTokenizer:
    return FastTokenizer.fit(smooth_chunks(300, 50, 14, seed=1), vocab_size=1024, scale=SCALE)


@pytest.mark.parametrize(("dim", "max_tokens"), [(7, 60), (14, 120)])
def test_smooth_chunks_round_trip_compactly(request, dim, max_tokens):
    tok = request.getfixturevalue(f"tok{dim}")
    held_out = smooth_chunks(40, 50, dim, seed=2)
    encoded = tok.encode_batch(held_out)
    errors = []
    for chunk, ids in zip(held_out, encoded, strict=True):
        assert ids == tok.encode(chunk)
        result = tok.decode(ids, 50, dim)
        assert result.ok and result.error is None
        assert result.actions.shape == (50, dim) and result.actions.dtype == np.float32
        errors.append(np.abs(result.actions - chunk))
    errors = np.stack(errors)
    rms_per_dim = np.sqrt((errors**2).mean(axis=(0, 1)))
    assert (errors.mean(axis=(0, 1)) < 0.02).all()
    assert (rms_per_dim <= RMS_BOUND).all()
    assert errors.max() < 0.3
    mean_tokens = np.mean([len(ids) for ids in encoded])
    assert 10 < mean_tokens < max_tokens  # FAST paper: roughly 30-60 per chunk for one arm
    assert 50 * dim / mean_tokens > 5  # coefficients per token


@PROPERTY_SETTINGS
@given(
    st.integers(1, 50).flatmap(
        lambda h: st.integers(1, 7).flatmap(
            lambda d: arrays(np.float64, (h, d), elements=st.floats(-1.5, 1.5, allow_nan=False))
        )
    )
)
def test_any_in_range_chunk_round_trips_within_bound(tok7, chunk):
    h, d = chunk.shape
    ids = tok7.encode(chunk)
    assert all(0 <= i < tok7.vocab_size for i in ids)
    result = tok7.decode(ids, h, d)
    assert result.ok, result.error
    rms = np.sqrt(((result.actions - chunk) ** 2).mean(axis=0))
    assert (rms <= RMS_BOUND + 1e-6).all()


@PROPERTY_SETTINGS
@given(
    horizon=st.integers(2, 50),
    dim=st.integers(1, 7),
    freqs=arrays(np.float64, (3, 7), elements=st.floats(0, 2)),
    amps=arrays(np.float64, (3, 7), elements=st.floats(-0.4, 0.4)),
    phases=arrays(np.float64, (3, 7), elements=st.floats(0, 2 * np.pi)),
)
def test_smooth_chunk_is_close_everywhere(tok7, horizon, dim, freqs, amps, phases):
    t = np.arange(horizon)[None, :, None] / horizon
    chunk = (amps[:, None, :dim] * np.cos(np.pi * freqs[:, None, :dim] * t + phases[:, None, :dim])).sum(axis=0)
    result = tok7.decode(tok7.encode(chunk), horizon, dim)
    assert result.ok
    assert np.abs(result.actions - chunk).max() < 0.15


@PROPERTY_SETTINGS
@given(tokens=st.lists(st.integers(-5, 1100), max_size=80), horizon=st.integers(0, 50), dim=st.integers(0, 8))
def test_arbitrary_tokens_never_crash_nor_give_silent_zeros(tok7, tokens, horizon, dim):
    result = tok7.decode(tokens, horizon, dim)
    assert isinstance(result, FastDecodeResult)
    if result.ok:
        assert result.actions.shape == (horizon, dim) and np.isfinite(result.actions).all()
    else:
        assert result.actions is None and result.error


def test_truncated_or_padded_sequences_are_errors(tok7):
    chunk = smooth_chunks(1, 50, 7, seed=5)[0]
    ids = tok7.encode(chunk)
    for cut in range(len(ids)):
        result = tok7.decode(ids[:cut], 50, 7)
        assert not result.ok and result.actions is None
    assert "truncated" in tok7.decode(ids[:-1], 50, 7).error
    assert "extra tokens" in tok7.decode([*ids, ids[-1]], 50, 7).error
    assert "expected 50x8" in tok7.decode(ids, 50, 8).error  # wrong shape at decode time
    assert tok7.decode([], 50, 7).error == "empty token sequence"
    assert "not a FAST id" in tok7.decode([*ids[:3], tok7.vocab_size], 50, 7).error
    assert "not an integer" in tok7.decode([1, "x"], 50, 7).error


def test_text_vocabulary_mapping_uses_reserved_tail(tok7):
    text = household_tokenizer()
    ids = tok7.encode(smooth_chunks(1, 50, 7, seed=6)[0])
    text_ids = tok7.to_text_ids(ids, text.vocab_size)
    assert all(t in text.reserved_action_ids for t in text_ids)
    assert text_ids == [text.vocab_size - 1 - i for i in ids]
    assert tok7.from_text_ids(text_ids, text.vocab_size) == ids
    assert text.decode(text_ids) == ""  # action ids never leak into decoded subtask text
    assert tok7.decode_text_ids(text_ids, text.vocab_size, 50, 7).ok
    # a word token in the middle of the generated actions -> a clear error, not a chunk
    word = text.encode(" cup")[0]
    bad = tok7.decode_text_ids([*text_ids[:2], word, *text_ids[2:]], text.vocab_size, 50, 7)
    assert not bad.ok and "not an action token" in bad.error
    with pytest.raises(ValueError, match="not an action token"):
        tok7.from_text_ids([word], text.vocab_size)
    with pytest.raises(ValueError, match="not a FAST id"):
        tok7.to_text_ids([tok7.vocab_size], text.vocab_size)
    with pytest.raises(ValueError, match="smaller than the FAST vocabulary"):
        tok7.to_text_ids([0], 100)


def test_save_load_round_trip(tok7, tmp_path):
    path = tok7.save(tmp_path)
    assert path.name == "fast_tokenizer.json"
    again = FastTokenizer.load(tmp_path)
    chunks = smooth_chunks(5, 50, 7, seed=7)
    assert [again.encode(c) for c in chunks] == [tok7.encode(c) for c in chunks]
    assert (again.vocab_size, again.scale, again.coefficient_range) == (
        tok7.vocab_size,
        tok7.scale,
        tok7.coefficient_range,
    )
    other = tok7.save(tmp_path / "sub" / "actions.json")
    assert FastTokenizer.load(other).vocab_size == tok7.vocab_size


def test_load_rejects_foreign_files(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a hearth-fast-tokenizer file"):
        FastTokenizer.load(tmp_path / "a.json")
    (tmp_path / "b.json").write_text("{broken")
    with pytest.raises(ValueError, match="not a FAST tokenizer file"):
        FastTokenizer.load(tmp_path / "b.json")
    (tmp_path / "c.json").write_text(json.dumps({"format": "hearth-fast-tokenizer", "version": 99}))
    with pytest.raises(ValueError, match="unsupported version 99"):
        FastTokenizer.load(tmp_path / "c.json")
    (tmp_path / "d.json").write_text(json.dumps({"format": "hearth-fast-tokenizer", "version": 1, "scale": 10}))
    with pytest.raises(ValueError, match="corrupt"):
        FastTokenizer.load(tmp_path / "d.json")
    with pytest.raises(FileNotFoundError):
        FastTokenizer.load(tmp_path / "missing.json")


def test_fit_is_deterministic_and_validates_input():
    data = smooth_chunks(60, 20, 3, seed=8)
    a, b = FastTokenizer.fit(data, vocab_size=300), FastTokenizer.fit(data, vocab_size=300)
    assert a.to_dict() == b.to_dict() and a.vocab_size <= 300
    with pytest.raises(ValueError, match=r"shape \[N, H, D\]"):
        FastTokenizer.fit(data[0])
    with pytest.raises(ValueError, match="NaN"):
        FastTokenizer.fit(np.full((2, 5, 2), np.nan))
    with pytest.raises(ValueError, match="smaller than the"):
        FastTokenizer.fit(data, vocab_size=50)
    with pytest.raises(ValueError, match="scale"):
        FastTokenizer.fit(data, scale=0.0)


def test_encode_validates_and_clips_with_warning(tok7, caplog):
    with pytest.raises(ValueError, match=r"shape \[H, D\]"):
        tok7.encode(np.zeros(7))
    with pytest.raises(ValueError, match="NaN"):
        tok7.encode(np.full((50, 7), np.nan))
    far = np.full((50, 7), 5.0)  # an unnormalized chunk: DC coefficient 354 > ±107
    with caplog.at_level(logging.WARNING, logger="policy.tokenizers.fast"):
        result = tok7.decode(tok7.encode(far), 50, 7)
    assert result.ok and np.allclose(result.actions, tok7.coefficient_range / SCALE / np.sqrt(50), atol=1e-6)
    assert any("clipped" in r.getMessage() for r in caplog.records)
