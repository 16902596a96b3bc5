"""The production host's commands: `hotline site check|render`, `install`, `uninstall`, `backup`,
`restore`, `version`. Added to the `hotline` group by ivr/cli.py; thin like the rest of it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ivr.errors import ConfigError, RoutesError
from ivr.exitcode import ExitCode

root_option = click.option(
    "--root",
    type=click.Path(file_okay=False),
    default="/",
    show_default=True,
    help="Install into this directory as if it were / (a scratch root, an image being built).",
)


def _fail(exc: ConfigError) -> None:
    if isinstance(exc, RoutesError):
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(ExitCode.INPUT)
    click.echo(f"hotline: {exc}", err=True)
    sys.exit(ExitCode.ENVIRONMENT)


def add_commands(main: click.Group) -> None:
    main.add_command(site_)
    main.add_command(install_)
    main.add_command(uninstall_)
    main.add_command(backup_)
    main.add_command(restore_)
    main.add_command(version_)


@click.group("site")
def site_() -> None:
    """The host's site file (/etc/hotline/site.yaml) and the Asterisk configuration rendered from it."""


@site_.command("check")
@click.argument("file", default="/etc/hotline/site.yaml", type=click.Path(dir_okay=False))
def site_check(file: str) -> None:
    """Validate the site file: a one-line summary, or every problem as FILE:LINE: message."""
    from ivr.site import config

    try:
        site = config.load(file)
    except ConfigError as exc:
        _fail(exc)
        return
    click.echo(
        f"{file}: ok — SIP on {site.bind} ({', '.join(site.transports)}), {len(site.carrier_sbcs)} carrier SBC "
        f"address(es), {len(site.trunks)} trunks, {len(site.seats)} seats, call log {site.calllog.split('@')[-1]}"
    )


@site_.command("render")
@click.argument("file", default="/etc/hotline/site.yaml", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Write Asterisk's configuration here.")
@click.option(
    "--secrets",
    default="/etc/hotline/secrets",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Generated secrets (ARI and seat passwords): read, or created 0600 when missing.",
)
@click.option("--dialplan", default=None, type=click.Path(file_okay=False), help="[default: the source's dialplan/]")
@click.option(
    "--routes",
    "routes_file",
    default="/etc/hotline/routes.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The routes whose ring chains Asterisk dials (HOTLINE_DIAL_PATH=dialplan).",
)
def site_render(file: str, out: str, secrets: str, dialplan: str | None, routes_file: str) -> None:
    """Asterisk's configuration from dialplan/, the site file and the routes' ring chains (pjsip, extensions,
    ARI, logger ...)."""
    from ivr.install.layout import SOURCE
    from ivr.routing import routes
    from ivr.site import config
    from ivr.site.render import render
    from ivr.site.secrets import Secrets

    try:
        site = config.load(file)
        table = routes.load(routes_file)
        source = Path(dialplan) if dialplan else SOURCE / "dialplan"
        done = render(site, source, Path(out), Secrets(Path(secrets)), table)
    except ConfigError as exc:
        _fail(exc)
        return
    except OSError as exc:
        click.echo(f"hotline: cannot render into {out}: {exc}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    click.echo(f"{out}: {len(done.files)} files rendered from {file}")


@click.command("install")
@root_option
@click.option(
    "--prompts",
    default=None,
    type=click.Path(file_okay=False, exists=True),
    help="Install these rendered prompts (*.wav) [default: render them into /var/lib/hotline/sounds].",
)
def install_(root: str, prompts: str | None) -> None:
    """Install (or upgrade) the hotline on this host: user, directories, secrets, Asterisk's
    configuration and prompts, systemd units, log rotation. Safe to run again."""
    from ivr.install.installer import install
    from ivr.install.layout import Host

    try:
        install(Host(Path(root).resolve()), prompts=Path(prompts) if prompts else None, say=click.echo)
    except ConfigError as exc:
        _fail(exc)
    click.echo("installed")


@click.command("uninstall")
@root_option
@click.option("--purge", is_flag=True, help="Also remove /etc/hotline, /var/lib/hotline, /var/log/hotline, the user.")
def uninstall_(root: str, purge: bool) -> None:
    """Remove what `hotline install` put on this host; data stays unless --purge."""
    from ivr.install.installer import uninstall
    from ivr.install.layout import Host

    try:
        uninstall(Host(Path(root).resolve()), purge=purge, say=click.echo)
    except ConfigError as exc:
        _fail(exc)
    click.echo("uninstalled")


@click.command("backup")
@root_option
@click.option("--out", default=None, type=click.Path(dir_okay=False), help="[default: /var/lib/hotline/backups/...]")
@click.option("--recordings", is_flag=True, help="Include the citizens' recorded messages.")
@click.option("--keep", default=0, type=click.IntRange(0), help="Keep only this many newest backups (0: all).")
def backup_(root: str, out: str | None, recordings: bool, keep: int) -> None:
    """A backup of the call log, secrets, site file and routes, as one tar.gz (0600)."""
    from ivr.install.backup import backup
    from ivr.install.layout import Host

    try:
        made = backup(Host(Path(root).resolve()), out=Path(out) if out else None, recordings=recordings, keep=keep)
    except ConfigError as exc:
        _fail(exc)
        return
    click.echo(str(made))


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, exists=True))
@root_option
def restore_(archive: str, root: str) -> None:
    """Put a backup back (stop the controller first; run `hotline install` after, to re-render)."""
    from ivr.install.backup import restore
    from ivr.install.layout import Host

    try:
        for line in restore(Host(Path(root).resolve()), Path(archive)):
            click.echo(line)
    except ConfigError as exc:
        _fail(exc)


@click.command("version")
def version_() -> None:
    """The installed version (and the commit it came from)."""
    from ivr.version import version

    click.echo(f"hotline {version()}")
