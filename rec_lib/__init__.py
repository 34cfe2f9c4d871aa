"""rec_lib: cold-start recommendations of new items, from raw shop exports to top-K tables."""

__version__ = "0.1.0"
