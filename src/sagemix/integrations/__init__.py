"""Training frameworks that own the backward pass: Lightning (:mod:`sagemix.integrations.lightning`) and
Accelerate (:mod:`sagemix.integrations.accelerate`).

Both run :meth:`sagemix.MixStep.objective`, the one-backward form of the step. Each module imports its
framework when imported itself and names the extra to install when it is missing
(``pip install "sagemix[lightning]"``, ``pip install "sagemix[accelerate]"``); this package imports
neither.
"""
