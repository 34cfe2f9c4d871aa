"""The TensorFlow MiniLM encoder reproduces sentence-transformers' vectors.

tests/fixtures/minilm_reference.json holds vectors computed by sentence-transformers (torch) on the
same model folder, made once with scripts/make_encoder_reference.py in a throw-away environment
(its docstring has the two commands). The project's stack has no torch; this test compares the
project's encoder against those vectors to 1e-4.
"""
import json

import numpy as np
import pytest

from rec_lib.core.errors import ConfigError
from rec_lib.text.encoder import TextEncoder, resolve_model_dir
from tests.helpers import REPO

REFERENCE = json.loads((REPO / "tests" / "fixtures" / "minilm_reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(batch_size=4)


def test_matches_sentence_transformers_reference(encoder):
    got = encoder.encode(REFERENCE["sentences"])
    want = np.asarray(REFERENCE["vectors"], dtype=np.float32)
    assert got.shape == want.shape == (len(REFERENCE["sentences"]), 384)
    assert np.abs(got - want).max() < 1e-4


def test_vectors_are_unit_length_and_order_independent(encoder):
    sentences = REFERENCE["sentences"]
    forward = encoder.encode(sentences)
    backward = encoder.encode(sentences[::-1])[::-1]
    np.testing.assert_allclose(np.linalg.norm(forward, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(forward, backward, atol=1e-5)  # batching by length does not change results


def test_truncation_empty_and_chinese_text_are_defined(encoder):
    long_text = REFERENCE["sentences"][-1]
    assert len(encoder.token_ids([long_text])[0]) == encoder.max_seq_length == 256
    empty, none, chinese = encoder.encode(["", None, "无线耳机"])
    np.testing.assert_allclose(empty, none)  # missing text embeds as the empty string
    assert np.isfinite(chinese).all() and abs(np.linalg.norm(chinese) - 1) < 1e-5


def test_related_texts_are_closer_than_unrelated(encoder):
    headphones, earbuds, pan = encoder.encode(
        ["wireless noise cancelling headphones", "bluetooth earbuds with deep bass", "cast iron frying pan"])
    assert headphones @ earbuds > headphones @ pan + 0.2


def test_model_folder_must_hold_the_needed_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match=r"lacks \['tokenizer.json', 'model.safetensors'\]"):
        resolve_model_dir(str(tmp_path))
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="not installed"):
        resolve_model_dir("package:no_such_model_package")
