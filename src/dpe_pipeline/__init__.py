"""Shared code of the course « Cloud Computing — pipeline de données DPE ».

Small modules named after the domain: ``settings`` (the ``.env``), ``records`` (the DPE
record schema), ``ademe`` (the API client), ``replay`` (the offline ADEME endpoint),
``checks`` (the labs' self-checks), ``stack`` (the native runner).
"""

__version__ = "0.1.0"
