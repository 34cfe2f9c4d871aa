"""Stage 2: item text -> vectors from the pretrained encoder (item_text_embeddings)."""
