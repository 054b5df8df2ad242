"""Command line: `python -m image_builder {build,check,test}` (with `containers/` on
PYTHONPATH; `make image` runs it).

    build DEF --build-arg NAME=VALUE ... [--output build/image] [--name NAME]
    check DEF --build-arg NAME=VALUE ...      parse and validate only (no root needed)
    test IMAGE_DIR [--test-user nobody]       run an image's %test again, unprivileged
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .artifacts import run_test
from .build import BuildOptions, build_image
from .definition import DefinitionError, load_definition
from .rootfs import BuildError, HostBinds, default_cache_dir, default_pip_cache


def _build_args(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"image_builder: error: --build-arg wants NAME=VALUE, got {pair!r}")
        values[name] = value
    return values


def _log(message: str) -> None:
    print(f"[image_builder] {message}", flush=True)


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m image_builder",
        description="Build an Apptainer definition file with Apptainer's semantics, "
        "without Apptainer: debootstrap, chroot, mksquashfs, siftool, ch-run.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "check"):
        sub = commands.add_parser(name, help=f"{name} a definition file")
        sub.add_argument("definition", type=Path)
        sub.add_argument(
            "--build-arg",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="value of {{ NAME }} in the definition (repeatable)",
        )
    build = commands.choices["build"]
    build.add_argument("--output", type=Path, default=Path("build/image"), help="output dir")
    build.add_argument("--name", help="image name (default: the definition's file stem)")
    build.add_argument(
        "--context",
        type=Path,
        default=Path.cwd(),
        help="where relative %%files sources are (default: the current directory)",
    )
    build.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir(),
        help="cache of debootstrapped bases (default: %(default)s)",
    )
    build.add_argument(
        "--pip-cache",
        type=Path,
        default=default_pip_cache(),
        help="host pip cache bound into %%post at /root/.cache/pip (default: %(default)s)",
    )
    build.add_argument("--no-pip-cache", action="store_true", help="do not bind a pip cache")
    build.add_argument(
        "--certificates",
        type=Path,
        default=Path("/etc/ssl/certs"),
        help="host CA directory bound read-only into %%post (default: %(default)s)",
    )
    build.add_argument("--test-user", default="nobody", help="who runs %%test (default: nobody)")
    build.add_argument("--no-test", action="store_true", help="do not run %%test")
    test = commands.add_parser("test", help="run a built image's %%test, unprivileged")
    test.add_argument("image", type=Path, help="the image directory (OUTPUT/NAME)")
    test.add_argument("--test-user", default="nobody")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "test":
            run_test(args.image, args.test_user, _log)
            return 0
        definition = load_definition(args.definition, _build_args(args.build_arg))
        for unused in definition.unused_build_args:
            _log(f"warning: build argument {unused} is not used by {args.definition}")
        if args.command == "check":
            for stage in definition.stages:
                sections = [f"%files from {f.from_stage}" for f in stage.files if f.from_stage]
                sections += ["%files"] * sum(1 for f in stage.files if f.from_stage is None)
                for section in ("post", "environment", "runscript", "test", "help"):
                    if getattr(stage, section) is not None:
                        sections.append(f"%{section}")
                if stage.labels:
                    sections.append("%labels")
                print(f"stage {stage.name}: {stage.bootstrap} {stage.os_version}: {sections}")
            return 0
        certificates = args.certificates if args.certificates.is_dir() else None
        options = BuildOptions(
            output_dir=args.output,
            name=args.name or args.definition.stem,
            context=args.context.resolve(),
            cache_dir=args.cache_dir,
            binds=HostBinds(certificates, None if args.no_pip_cache else args.pip_cache),
            test_user=None if args.no_test else args.test_user,
        )
        begin = time.monotonic()
        report = build_image(definition, options, _log)
        total = time.monotonic() - begin
    except (DefinitionError, BuildError) as error:
        print(f"image_builder: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("image_builder: interrupted; nothing was left behind", file=sys.stderr)
        return 130
    print(f"\nbuilt {report.sif} in {total:.0f} s (sha256 {report.sha256})")
    cached = ", ".join("cached" if c else "debootstrapped" for c in report.base_from_cache)
    print(f"bases: {cached}")
    for step, seconds in report.timings:
        print(f"  {seconds:7.1f} s  {step}")
    print(
        f"sizes: directory {_mib(report.sizes['directory'])}, "
        f"squashfs {_mib(report.sizes['squashfs'])}, SIF {_mib(report.sizes['sif'])}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
