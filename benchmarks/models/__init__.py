"""Model registry entries: typed parameters -> a model with ``training_loss`` and ``losses``.

@MODELS.register("name")
class Entry(ModelEntry):
    Params = SomeFrozenDataclass
    @classmethod
    def build(cls, params, data): ...

Importing this package registers the built-in models (it is the ``primebench.models``
entry point of this package's metadata), one module per entry: ``prime``
(:mod:`.mdm_prime`), ``mdm`` (:mod:`.mdm`), ``ar`` (:mod:`.ar`), ``bd3lm`` (:mod:`.bd3lm`)
and ``mdm-mixture`` (:mod:`.mdm_mixture`).
"""

from . import ar, bd3lm, mdm, mdm_mixture, mdm_prime  # noqa: F401  (registers the entries)
