"""Command line: `python -m bot [run|render|tiny-models|story|blog|worker|workers] ...`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.logging_redaction import install_redaction


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Greenheart: a Discord bot for shared image and story making.",
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="settings file (default: ./config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command")

    sub.add_parser("run", help="connect to Discord and serve (the default)")

    render = sub.add_parser("render", help="render a prompt to image files, without Discord")
    render.add_argument("prompt", help='e.g. "Oregon 💚 | watercolor"')
    render.add_argument("--style", help="a style preset, or 'all styles'")
    render.add_argument("--negative", help="what to keep out of the picture")
    render.add_argument("--seed", type=int)
    render.add_argument("--steps", type=int)
    render.add_argument("--guidance", type=float)
    render.add_argument("--aspect", help="1:1, 3:2, 2:3, 16:9 or 9:16")
    render.add_argument("--count", type=int, help="images, 1-4")
    render.add_argument("--model", help="hub id or folder (overrides image.model)")
    render.add_argument("--image", type=Path, help="start from this picture (img2img)")
    render.add_argument("--strength", type=float,
                        help="with --image: how far to move from it (0.05-1; default "
                             "image.img2img_strength)")
    render.add_argument("--zoom-out", type=float, metavar="FACTOR",
                        help="with --image: widen it, centred, FACTOR times (1.1-4; the bot's "
                             "buttons offer 1.5 and 2)")
    render.add_argument("--pan", choices=("left", "right", "up", "down"),
                        help="with --image: extend it on one side by half its size")
    render.add_argument("--out", type=Path, default=Path("out"), help="folder for the files")

    worker = sub.add_parser("worker", help="serve as a remote GPU worker (executor.mode = "
                            "\"celery\")")
    worker.add_argument("--name", help="this worker's name (default: the host name); "
                        "each worker needs its own")

    sub.add_parser("workers", help="list the remote GPU workers that are up")

    tiny = sub.add_parser("tiny-models", help="write tiny random-weight models for offline use")
    tiny.add_argument("dir", type=Path)

    story = sub.add_parser("story", help="write an illustrated story, without Discord")
    story.add_argument("seed", help='the first line, e.g. "The sky"')
    story.add_argument("--lines", type=int, default=4, help="lines to add (1-50)")
    story.add_argument("--style", help="style preset for the pictures")
    story.add_argument("--title")
    story.add_argument("--model", help="image model (overrides image.model)")
    story.add_argument("--story-model", help="text model (overrides story.model)")
    story.add_argument("--out", type=Path, default=Path("out"), help="folder for the export")

    blog = sub.add_parser("blog", help="write the finished stories as a static blog (read-only "
                          "on the database; the bot may be running)")
    blog.add_argument("dir", type=Path, help="the site's folder (brought up to date)")
    blog.add_argument("--guild", type=int, help="only this server's stories (default: all)")
    blog.add_argument("--base-url", help="the URL DIR is served at, for the feed's links")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Here, not under __main__: the `greenheart` console script calls main() directly.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # -v shows discord.py's raw gateway events and REST calls: keep the tokens out of them.
    redactor = install_redaction()
    command = args.command or "run"
    if command == "tiny-models":
        from bot.pipelines.tiny import build_tiny_models

        paths = build_tiny_models(args.dir)
        print(f"image model: {paths.image}\nstory model: {paths.story}")
        print(f'try: python -m bot render "Oregon 💚 | watercolor" --model {paths.image}')
        return 0
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    redactor.add_secret(settings.token)
    if command == "render":
        from bot.cli.render import render

        return asyncio.run(render(settings, args))
    if command == "worker":
        return run_worker_command(settings, args.name, verbose=args.verbose)
    if command == "workers":
        return print_workers(settings)
    if command == "story":
        from bot.cli.story import write_story

        return asyncio.run(write_story(settings, args))
    if command == "blog":
        from bot.cli.blog import write_blog

        return asyncio.run(write_blog(settings, args))
    return run_bot(settings)


def run_worker_command(settings: Settings, name: str | None, *, verbose: bool) -> int:
    from bot.pipelines.errors import ModelLoadError
    from bot.remote.worker import WorkerNameTaken, run_worker

    try:
        return run_worker(settings, name=name, loglevel="DEBUG" if verbose else "INFO")
    except (ModelLoadError, WorkerNameTaken) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def print_workers(settings: Settings) -> int:
    from bot.executor.workers import worker_line
    from bot.remote.broker import Broker, BrokerDown, shown_url

    async def look() -> int:
        broker = Broker(settings)
        try:
            seen = await broker.workers()
        except BrokerDown as exc:
            where = shown_url(settings.executor.broker_url)
            print(f"error: the broker at {where} is unreachable: {exc}", file=sys.stderr)
            return 1
        finally:
            await broker.close()
        if not seen:
            print(f"no GPU worker is up (broker: {shown_url(settings.executor.broker_url)})")
        for worker in seen:
            print(worker_line(worker.info))
        return 0

    return asyncio.run(look())


def run_bot(settings: Settings) -> int:
    if not settings.token:
        print("DISCORD_TOKEN is not set. Create a bot at https://discord.com/developers, "
              "then: DISCORD_TOKEN=... python -m bot", file=sys.stderr)
        return 2
    from bot.app import WorkerStuck, serve  # the composition root pulls in torch
    from bot.db.connection import DatabaseOpenError
    from bot.metrics import MetricsError
    from bot.pipelines.errors import ModelLoadError

    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:
        pass
    except (ModelLoadError, DatabaseOpenError, MetricsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except WorkerStuck as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
