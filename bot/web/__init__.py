"""The read-only web dashboard: pages, their JSON API and live updates.

Served by ``shadow run --http`` beside ``/health``, ``/metrics`` and ``/status``
(:mod:`bot.http_api`), and by ``shadow ui`` for any ledger file (:mod:`bot.web.server`).
Everything it shows is read from the ledger over read-only connections
(:mod:`state.queries`), so the two serve the same pages.
"""
