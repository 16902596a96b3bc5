"""What the route editors change while the controller runs: the history of live tables, notices, the stage.

The Controller owns one `RouteEditing`. It puts every table that goes live on record (start, SIGHUP,
a changed file: `went_live`), and once a second reads the call log's live notices and staged table
(`watch`, off the event loop) — so `hotline notice start` and `hotline routes stage` act on every
controller sharing that call log within a second, without a restart or a reload.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pwd
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from ivr.calllog import CallLog, editing
from ivr.errors import RoutesError
from ivr.metrics import Metrics
from ivr.prompts import render_live
from ivr.routing import routes
from ivr.routing.notices import Notice, NoticeBoard
from ivr.routing.routes import RouteTable
from ivr.routing.staging import Stage
from ivr.timekeeping import LOCAL_TZ

log = structlog.get_logger("ivr.controller.editing")


def file_owner(path: Path) -> str:
    """The unix user owning `path`: who wrote it last when editors save by writing a new file."""
    try:
        uid = path.stat().st_uid
    except OSError:
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


class RouteEditing:
    def __init__(
        self,
        calllog: CallLog,
        metrics: Metrics,
        routes_path: Path,
        clock: Callable[[], dt.datetime],
        sound_dirs: list[Path] | None = None,
    ) -> None:
        self.clock = clock  # the controller's local clock (naive), simulated in drills
        self.sound_dirs = sound_dirs or []  # where routes.yaml's notice texts are rendered (prompts.live_dirs)
        self.calllog = calllog
        self.metrics = metrics
        self.routes_path = routes_path
        self.board = NoticeBoard()
        self.stage: Stage | None = None
        self._read_failed = False
        self._planned: set[str] = set()  # routes.yaml's notices live at the last look

    def went_live(self, table: RouteTable, how: str) -> None:
        """Put `table` on record in the call log (through the writer: journaled while the database is down),
        and render its notices' texts now, off the event loop, so a notice added by a reload is heard."""
        self.calllog.record(
            editing.RoutesLive(
                table.digest, table.text, str(self.routes_path), time.time(), how, file_owner(self.routes_path)
            )
        )
        texts = {n.prompt: n.text for n in table.notices if n.text}
        if texts and self.sound_dirs:
            threading.Thread(target=self._render, args=(texts,), name="notice-prompts", daemon=True).start()

    def _render(self, texts: dict[str, str]) -> None:
        try:
            made = render_live(texts, self.sound_dirs)
        except Exception as exc:  # no espeak-ng, a full disk: the notice plays silence, the calls go on
            log.error("notice_prompts_not_rendered", prompts=sorted(texts), error=str(exc))
        else:
            if made:
                log.info("notice_prompts_rendered", prompts=made)

    async def watch(self, live: Callable[[], RouteTable], interval: float = 1.0) -> None:
        while True:
            try:
                notices, stage_row = await asyncio.to_thread(self._read)
            except Exception as exc:  # a locked or unreachable log must not stop the controller
                if not self._read_failed:
                    log.warning("editing_read_failed", error=self.calllog.describe(exc))
                self._read_failed = True
            else:
                self._read_failed = False
                self._take_notices(notices, live())
                await self._take_stage(stage_row, live())
            await asyncio.sleep(interval)

    def _read(self) -> tuple[list[Notice], dict[str, Any] | None]:
        return editing.live_notices(self.calllog, time.time()), editing.current_stage(self.calllog)

    def _take_notices(self, notices: list[Notice], table: RouteTable) -> None:
        started, ended = self.board.refresh(notices)
        for notice in started:
            log.info(
                "notice_live",
                notice=notice.id,
                prompt=notice.prompt,
                entries=",".join(sorted(notice.entries)) or "all",
                to_operators=notice.to_operators,
                until=notice.ends.isoformat(timespec="minutes"),
                by=notice.by,
            )
        for notice in ended:
            log.info("notice_over", notice=notice.id)
        # routes.yaml's dated notices start and end on the clock, not on a command: logged when seen to.
        planned = {n.id: n for n in table.notices if n.live_at(self.table_now())}
        for nid in planned.keys() - self._planned:
            n = planned[nid]
            log.info("notice_live", notice=nid, prompt=n.prompt, source=table.source, to_operators=n.to_operators)
        for nid in self._planned - planned.keys():
            log.info("notice_over", notice=nid, source=table.source)
        self._planned = set(planned)
        self.metrics.set_notices(self.board.live(table.notices, self.table_now(), dt.datetime.now(LOCAL_TZ)))

    def table_now(self) -> dt.datetime:
        """The controller's clock (aware): what routes.yaml's dated notices are live by."""
        return self.clock().replace(tzinfo=LOCAL_TZ)

    def notices_for(self, table: RouteTable, entry: str) -> list[Notice]:
        """The notices a caller of `entry` on `table` hears now."""
        return self.board.for_call(table.notices, entry, self.table_now(), dt.datetime.now(LOCAL_TZ))

    async def _take_stage(self, row: dict[str, Any] | None, live: RouteTable) -> None:
        if row is None:
            if self.stage is not None:
                log.info("routes_stage_ended", version=self.stage.table.digest)
                self.stage = None
                self.metrics.set_stage(None, 0)
            return
        if self.stage is not None and self.stage.id == row["id"]:
            return
        try:
            table = await asyncio.to_thread(routes.parse, row["text"], f"staged:{Path(row['source']).name}")
        except RoutesError as exc:  # checked when staged; refused here too if this version reads it otherwise
            log.error("routes_stage_refused", version=row["digest"], problems=[str(p) for p in exc.problems])
            self.stage = None
            self.metrics.set_stage(None, 0)
            return
        self.stage = Stage(int(row["id"]), table, int(row["share"]), row["author"])
        self.metrics.set_stage(table.digest, self.stage.share)
        log.info("routes_stage_live", version=table.digest, share=self.stage.share, live_version=live.digest)
