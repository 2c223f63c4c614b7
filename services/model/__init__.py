"""The model: resolving and loading models (``loading``), hooks on their attention modules (``hooks``),
the checked inputs of a forward pass (``inputs``) and the forward pass itself (``forward``).

Above the bottom of the services (``result``, ``config``, ``errors``); below the store and the analyses.
"""
