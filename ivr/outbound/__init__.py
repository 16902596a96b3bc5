"""Calls the hotline places itself: 漏接回拨 (a missed caller called back, an operator seat rung first)
and 回访 (the citizen asked about the handling once their ticket is closed).

policy.py  when and how often (routes.yaml `outbound:`: hours, attempts, backoff), pure
store.py   what is kept: every attempt, the follow-ups (call-log schema version 7)
stories.py the two calls, told top to bottom on a CallControl like a citizen's call
runner.py  the controller's loop that works both lists on Asterisk (ARI originate)
"""
