"""Depth AnyEvent in JAX/Flax: models, data, training, evaluation and weight conversion.

Importing the package sets one XLA:CPU option before JAX starts its backends: convolutions run on XLA's own
(Eigen) kernels instead of YNNPACK, jaxlib 0.10's default, which runs the DPT head's 3x3 convolutions 1.2-1.8x
slower on x86 (bench/models.py); matrix products stay with YNNPACK, which is faster for them. XLA_FLAGS that
already name the option win; accelerators ignore it; imported after JAX has run a computation, it has no effect.
"""

import os

_CPU_FUSIONS = "--xla_cpu_experimental_ynn_fusion_type"
_flags = os.environ.get("XLA_FLAGS", "")
if _CPU_FUSIONS not in _flags:
    os.environ["XLA_FLAGS"] = f"{_flags} {_CPU_FUSIONS}=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT".strip()
