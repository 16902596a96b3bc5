"""Prompts: which sound files a call plays, and rendering them from text.

Static prompts are text in recordings/prompts.yaml; menu prompts are composed from routes.yaml
(one file per option: 'menu-main-1' says "公安局请按1"), and a live menu plays the files of the
options live at that moment — so the voice can never offer an option the menu lacks, even
before a batch of routes goes live.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from ivr.errors import ConfigError
from ivr.routing.menu import Ask
from ivr.routing.routes import RouteTable

REQUIRED = (
    "sorry-fallback",
    "connecting",
    "to-operator",
    "invalid",
    "no-input",
    "dept-busy",
    "dept-noanswer",
    "operators-busy",
    "goodbye-invalid",
    "menu-operator",
    "menu-queued",
    "menu-tail",
    "number-entry",
    "after-hours",
    "leave-message",
    "message-saved",
    "survey",
    "survey-thanks",
    *(f"digit-{d}" for d in range(10)),
    "ticket-number-is",
    "ticket-number-repeat",
    "progress-enter",
    "progress-not-found",
    "progress-none-own",
    "progress-ticket",
    "progress-due",
    "progress-goodbye",
    "ticket-state-other",
    "callback-seat",
    "callback-citizen-unreached",
    "followup-intro",
    "followup-question",
    "followup-thanks",
    "followup-reopened",
    "followup-opted-out",
    "followup-goodbye",
    "recording-notice",
)


class Prompts:
    """Media URIs for ARI playback; files live in Asterisk's sounds dir under `prefix`/."""

    def __init__(self, prefix: str = "hotline") -> None:
        self.prefix = prefix
        # While queued: the Chinese ringback tone, which Asterisk loops until stopped (no
        # music-on-hold files are needed, and callers read it as "still connecting").
        self.hold_media = ["tone:ring;tonezone=cn"]

    def sound(self, name: str) -> str:
        return f"sound:{self.prefix}/{name}"

    def for_ask(self, ask: Ask, *, queued: bool = False) -> list[str]:
        """The menu's files; `queued` (intake: human-first): said to a caller already waiting for a person."""
        if ask.silent:
            return []
        names: list[str] = []
        if ask.notice == "invalid":
            names.append("invalid")
        elif ask.notice == "no_input":
            names.append("no-input")
        if ask.first and ask.menu.intro:
            names.append(f"menu-{ask.menu.id}-intro")
        if ask.number_entry:
            names.append("number-entry")
        else:
            # '0' first: the national standard wants the way to a person heard before any choice.
            names.append("menu-queued" if queued else "menu-operator")
            names += [f"menu-{ask.menu.id}-{o.key}" for o in ask.options]
            names.append("menu-tail")
        return [self.sound(n) for n in names]


def load_static(path: Path) -> dict[str, str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read prompts: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}:1: prompts must be a mapping of name: text")
    missing = [n for n in REQUIRED if n not in data]
    if missing:
        raise ConfigError(f"{path}:1: missing prompts: {', '.join(missing)}")
    return {str(k): v for k, v in data.items()}


DIGITS = "零一二三四五六七八九"


def numeral(n: int) -> str:
    """0..99 in Chinese numerals, as a date or an hour is said: 十, 十二, 二十, 三十一."""
    tens, ones = divmod(n, 10)
    if not tens:
        return DIGITS[ones]
    return ("" if tens == 1 else DIGITS[tens]) + "十" + (DIGITS[ones] if ones else "")


def plan(table: RouteTable, static: dict[str, str]) -> dict[str, str]:
    """Every prompt file the hotline needs, name -> text."""
    texts = dict(static)
    texts["queue-next"] = "人工座席正忙，您是下一位，请稍候。"
    for ahead in range(1, 10):
        texts[f"queue-ahead-{ahead}"] = f"人工座席正忙，您前面还有{DIGITS[ahead]}位，请稍候。"
    texts["queue-many"] = "人工座席正忙，前面等候的人较多，请耐心等待。"
    # A ticket's due date (查询办理进度), said as "十二月八日十时".
    texts.update({f"month-{m}": f"{numeral(m)}月" for m in range(1, 13)})
    texts.update({f"day-{d}": f"{numeral(d)}日" for d in range(1, 32)})
    texts.update({f"hour-{h}": f"{numeral(h)}时" for h in range(24)})
    for menu in table.menus.values():
        if menu.intro:
            texts[f"menu-{menu.id}-intro"] = menu.intro
        for option in menu.options:
            texts[f"menu-{menu.id}-{option.key}"] = f"{option.spoken}。"
    for notice in table.notices:
        if notice.text:
            texts[notice.prompt] = notice.text
    return texts


def render(texts: dict[str, str], out: Path, voice_dir: Path | None = None) -> list[str]:
    """Write NAME.wav (8 kHz, mono, 16-bit) for each prompt; returns the names (re)rendered.

    A wav is re-made only when its text (or its recorded replacement) changed, tracked in a
    sidecar NAME.sha, so a second run costs nothing.
    """
    out.mkdir(parents=True, exist_ok=True)
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise ConfigError(f"'{tool}' is not installed (apt-get install espeak-ng sox)")
    made: list[str] = []
    for name, text in sorted(texts.items()):
        voice = voice_dir / f"{name}.wav" if voice_dir else None
        source_key = f"voice:{voice.stat().st_mtime_ns}" if voice and voice.exists() else f"tts:{text}"
        digest = hashlib.sha256(source_key.encode()).hexdigest()
        wav, sha = out / f"{name}.wav", out / f"{name}.sha"
        if wav.exists() and sha.exists() and sha.read_text() == digest:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.wav"
            if voice and voice.exists():
                raw = voice
            else:
                subprocess.run(
                    ["espeak-ng", "-v", "cmn", "-s", "230", "-w", str(raw), text], check=True, capture_output=True
                )
            subprocess.run(
                ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(wav)], check=True, capture_output=True
            )
        sha.write_text(digest)
        made.append(name)
    return made


# Hold music (a caller held while the operator consults a department): a short plucked phrase in a
# pentatonic scale, quiet, made by sox at setup so no music file (nor its licence) ships with the repo.
# Asterisk's music-on-hold class "hotline" (dialplan/musiconhold.conf) loops every file in MOH_DIR.
MOH_DIR = "moh"
HOLD_MUSIC = "hold-music"
HOLD_PHRASE = (
    (523.25, 0.45),
    (587.33, 0.45),
    (659.25, 0.9),
    (783.99, 0.45),
    (659.25, 0.45),
    (587.33, 0.9),
    (523.25, 0.45),
    (440.0, 0.45),
    (523.25, 1.35),
    (0.0, 0.9),
)  # (Hz, seconds); 0 Hz is a rest


def render_hold_music(out: Path) -> Path:
    """Write out/moh/hold-music.wav (8 kHz, mono, 16-bit) unless the same phrase is there already."""
    if shutil.which("sox") is None:
        raise ConfigError("'sox' is not installed (apt-get install sox)")
    folder = out / MOH_DIR
    folder.mkdir(parents=True, exist_ok=True)
    wav, sha = folder / f"{HOLD_MUSIC}.wav", folder / f"{HOLD_MUSIC}.sha"
    digest = hashlib.sha256(repr(HOLD_PHRASE).encode()).hexdigest()
    if wav.exists() and sha.exists() and sha.read_text() == digest:
        return wav
    fmt = ["-r", "8000", "-c", "1", "-b", "16"]
    with tempfile.TemporaryDirectory() as tmp:
        notes = []
        for n, (hz, seconds) in enumerate(HOLD_PHRASE):
            note = Path(tmp) / f"{n:02d}.wav"
            tone = ["synth", str(seconds), "pluck", str(hz)] if hz else ["trim", "0", str(seconds)]
            subprocess.run(["sox", "-n", *fmt, str(note), *tone, "vol", "0.3"], check=True, capture_output=True)
            notes.append(str(note))
        subprocess.run(["sox", *notes, *fmt, str(wav), "repeat", "1"], check=True, capture_output=True)
    sha.write_text(digest)
    return wav


def live_dirs(state: Path) -> list[Path]:
    """Where a prompt made while the hotline runs goes: the state's sounds (copied into Asterisk at its
    start) and, when `hotlinectl start-asterisk` left its path in STATE/asterisk-sounds, the running
    Asterisk's own — so a notice is heard at once, not only after Asterisk's next start."""
    dirs = [state / "sounds"]
    try:
        live = Path((state / "asterisk-sounds").read_text(encoding="utf-8").strip())
    except OSError:
        return dirs
    return [*dirs, live] if live.is_dir() else dirs


def render_live(texts: dict[str, str], dirs: list[Path]) -> list[str]:
    """Render `texts` into the first dir (as `render`) and copy each wav to the others; the names made."""
    made = render(texts, dirs[0])
    for other in dirs[1:]:
        for name in texts:
            if name in made or not (other / f"{name}.wav").exists():
                shutil.copyfile(dirs[0] / f"{name}.wav", other / f"{name}.wav")
                (other / f"{name}.wav").chmod(0o644)  # Asterisk runs as its own user
    return made
