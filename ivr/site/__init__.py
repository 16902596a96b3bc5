"""The site: one production host's addresses, trunks, seats and paths (/etc/hotline/site.yaml).

config.py parses and validates the file (FILE:LINE problems, like routes.yaml); render.py turns it,
with dialplan/, into the Asterisk configuration that host runs.
"""
