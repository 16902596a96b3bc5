"""The hold music setup makes: a real 8 kHz mono sound Asterisk's music on hold can loop, made once."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import pytest

from ivr import prompts

pytestmark = pytest.mark.skipif(shutil.which("sox") is None, reason="sox makes the hold music (apt-get install sox)")


def test_hold_music_is_an_audible_8khz_mono_wav_in_the_moh_folder(tmp_path: Path) -> None:
    wav = prompts.render_hold_music(tmp_path)
    assert wav == tmp_path / "moh" / "hold-music.wav"
    with wave.open(str(wav)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() / w.getframerate() > 5  # a phrase, not a beep
        frames = w.readframes(w.getnframes())
    samples = [int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)]
    assert max(abs(s) for s in samples) > 1000  # sound, not silence
    assert max(abs(s) for s in samples) < 16000  # and quiet: under the prompts


def test_hold_music_is_made_once(tmp_path: Path) -> None:
    first = prompts.render_hold_music(tmp_path).stat().st_mtime_ns
    assert prompts.render_hold_music(tmp_path).stat().st_mtime_ns == first
