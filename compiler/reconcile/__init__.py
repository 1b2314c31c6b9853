"""`specops reconcile`: the standing GitOps loop (Argo CD's and Flux's controller, for specops).

Every interval, or when a webhook fires, it fetches a branch (source.py), plans each
environment against its live system and applies it by the environment's policy (engine.py),
holding the state lock only while applying; it serves /healthz, /readyz, /metrics and
/webhook (server.py), exports Prometheus metrics (metrics.py) and logs one JSON line per
action (log.py). loop.py ties them together with back-off on errors.
"""
