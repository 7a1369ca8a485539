"""Rule sets: the anomaly rules a symbol runs, chosen per asset class or symbol — pure logic.

- ``base``       the ``Rule`` interface, the ``RuleState`` snapshot base and the alert builder
- ``window``     a rolling window of the last N values (a typed, serialisable state)
- ``deviation``  the seed's rules: PRICE_SPIKE / CIRCUIT_BREAKER and VOLUME_SPIKE (3x the mean)
- ``zscore``     RETURN_OUTLIER: log return against the EWMA volatility of log returns
- ``luld``       LIMIT_STATE / TRADING_PAUSE: LULD-style price bands around a 5-minute mean
- ``whales``     VOLUME_SPIKE by the symbol's own size distribution (log-size z-score)
- ``book``       ``RuleSet`` (rules run in order), ``SymbolRules`` (per-symbol state), ``RuleBook``
- ``config``     the rules configuration (JSON/YAML), validated with errors naming the bad key
- ``backtest``   ``run_rules`` over trades in event-time order and ``compare_alerts``

This package imports nothing from its own ``__init__`` so that ``pipeline.rules`` can use
``deviation`` without an import cycle.
"""
