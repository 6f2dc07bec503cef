"""AI telephone (/telephone): a prompt is drawn, the picture described (by the caption
model, or by members in turn), the description drawn, and so on; the end shows the whole
chain and exports it like a story.

`models` (a game and its rounds), `repository` (SQLite), `game` (`Telephone`: the rules and
the driver, resumed after a restart), `chain` (the side-by-side picture), `export`.
"""

from bot.telephone.game import Table, Telephone, TelephoneError, is_telephone_job
from bot.telephone.models import (
    DEFAULT_ROUNDS,
    MAX_ROUNDS,
    MIN_ROUNDS,
    Game,
    GameState,
    Mode,
    Round,
)
from bot.telephone.repository import TelephoneRepository

__all__ = [
    "DEFAULT_ROUNDS",
    "MAX_ROUNDS",
    "MIN_ROUNDS",
    "Game",
    "GameState",
    "Mode",
    "Round",
    "Table",
    "Telephone",
    "TelephoneError",
    "TelephoneRepository",
    "is_telephone_job",
]
