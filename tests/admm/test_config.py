"""``AdmmConfig``: a bad setting is an ``InputError`` naming its plan key."""

from __future__ import annotations

import pytest

from graphprune.admm import AdmmConfig
from graphprune.errors import InputError


@pytest.mark.parametrize("kwargs,key", [
    ({"progressive": (0.6, 0.4)}, "admm.progressive"),
    ({"sparsity": 0.5, "progressive": (0.7,)}, "admm.progressive"),
    ({"update_every": "two epochs"}, "admm.update_every"),
    ({"rho_growth": 0.5}, "admm.rho_growth"),
    ({"sparsity": 1.0}, "admm.sparsity"),
])
def test_config_errors_name_the_key(kwargs, key):
    with pytest.raises(InputError, match=key):
        AdmmConfig(**kwargs)
