"""Device commands for the CLI: ``edgeprune prepare-emulator``."""

from __future__ import annotations

import time

import click

from ..errors import EdgepruneError


@click.command("prepare-emulator")
@click.option("--force", is_flag=True, help="Build the emulator root anew even if one is cached.")
@click.pass_context
def prepare_emulator(ctx: click.Context, force: bool) -> None:
    """Build the emulated aarch64 board used by qemu targets (rpi3, rpi4, rpi5 ...).

    Downloads a minimal Debian arm64 root and the aarch64 runtimes (about 220 MB
    unpacked) and builds the instruction-counting QEMU plugin. Cached: later
    runs return at once. Needs qemu-user, mmdebstrap, gcc and libfaketime (apt).
    """
    from .qemu_root import prepare_root

    def log(message: str) -> None:
        click.echo(message, err=True)

    started = time.monotonic()
    try:
        path = prepare_root(force=force, log=log)
    except EdgepruneError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(exc.exit_code)
    click.echo(f"emulator root: {path} ({time.monotonic() - started:.1f}s)")
