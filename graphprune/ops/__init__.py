"""The op families. Importing this package fills the op table (``graphprune.ops.registry``): each family
module declares its ops' channel rules, shape formulas, liveness kinds, resize and traits together."""

from graphprune.ops import (  # noqa: F401  (imported for their registrations)
    attention,
    concat,
    conv,
    elementwise,
    expand,
    indexing,
    norm,
    pad,
    permute,
    pooling,
    queries,
    reduction,
    reshape,
    shuffle,
    timm,
    torchvision,
)
