"""The generated demo shop that `make run` uses without INPUT, and its ground truth."""
