"""Stage 3: the two-tower model, trained by Horovod workers fed by Petastorm; new items adapted
from their first users (few_shot)."""
