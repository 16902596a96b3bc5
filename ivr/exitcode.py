"""What the hotline's commands exit with: `hotline` (ivr.cli and the commands it adds) and `python -m lab`.

When each is used is listed once, in ivr/cli.py's docstring and in README.md ("The command line").
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    INPUT = 1  # the input is wrong: fix the file or the arguments
    ENVIRONMENT = 2  # the environment is wrong: fix the machine, the secrets, the services
    CHANGES = 3  # `diff`: the edit changes something for callers
