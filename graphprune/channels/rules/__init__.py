"""Per-op channel rules, one module per op family. Importing this package fills the rule table."""

from graphprune.channels.rules import (  # noqa: F401  (imported for their registrations)
    attention,
    conv,
    elementwise,
    movement,
    norm,
    reduction,
    thirdparty,
)
