"""`segpic encode`, `segpic decode` and `segpic info`: one file each."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .. import codecs, container, target_record
from .base import (
    DecoderCache,
    EncoderSetup,
    check_quality_args,
    codec_options,
    device_option,
    handle_errors,
    main,
    output_format_options,
    quality_options,
    stderr_console,
    strip_option,
)
from .files import ImageOutput, check_output, decode_file, encode_file, read_spic
from .stdio import display, is_stdio


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@quality_options
@codec_options
@strip_option
@handle_errors
def encode(src: Path, dst: Path, quality: float | None, bpp: float | None,
           size: int | None, psnr: float | None, best_effort: bool | None, codec: str,
           device: str, strip: bool, **options: Any) -> None:
    """Encode an image (PNG, JPEG, ...) into a .spic file. `-` for SRC reads the
    image from standard input, `-` for DST writes the file to standard output.

    The image is turned upright by its EXIF orientation; its ICC profile, EXIF and
    XMP are kept (unless --strip) and written back into the decoded image.

    --bpp, --size and --psnr: segpic tries a few qualities (at most about 8
    encodes) and keeps the highest whose file fits, or the lowest that reaches
    the PSNR; moric steers one encode to the target (a file above a size is not
    met; a PSNR is met from 0.15 dB below it). Exit 2 when the target is not
    met, unless --best-effort.

    With --codec moric the encoder optimises for minutes: a progress bar shows the
    step, rate, PSNR and ETA; Ctrl-C (or SIGTERM) stops it and writes the best
    state so far, a second Ctrl-C aborts without writing anything."""
    best_effort = bool(best_effort)
    check_quality_args(quality, bpp, size, psnr, best_effort, codec)
    check_output(dst)
    setup = EncoderSetup(codec, device, options)  # options: each codec's declared flags
    targets = {"size": size, "psnr": psnr, "best_effort": best_effort}
    if setup.optimises:
        from .progress import OptimisationProgress  # rich.progress: not for `segpic info`

        # the file's name, not its path: the bar's columns must fit the terminal
        name = display(src) if is_stdio(src) else src.name
        with OptimisationProgress(stderr_console(), f"{codec} {name}") as bar:
            result = encode_file(setup, src, dst, quality, bpp, strip, **targets,
                                 progress=bar.update, should_stop=bar.should_stop)
    else:
        result = encode_file(setup, src, dst, quality, bpp, strip, **targets)
    kept = container.read_frame(result.data).metadata
    extra = (f" (with {sum(map(len, kept.values()))} bytes of metadata: {', '.join(kept)})"
             if kept else "")
    searched = ""
    if result.target is not None:
        met = "met" if result.target_met else "NOT met, closest file written"
        measured = "" if result.psnr is None else f", {result.psnr:.2f} dB"
        searched = (f", target {result.target} {met}{measured}, "
                    f"{result.trials} trial encodes")
    # the summary goes to stderr when the file itself goes to standard output
    click.echo(f"{display(src)} -> {display(dst, stdin=False)}: {result.width}x"
               f"{result.height}, quality {result.quality:g}, {len(result.data)} bytes{extra}, "
               f"{result.bpp:.4f} bpp{searched}", err=is_stdio(dst))


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="segpic: weights folder or manifest (default: the shipped weights of the "
                   "file's model).")
@device_option
@click.option("--region", "region", default=None, metavar="K[,K2...]",
              help="moric: decode only these regions (numbered from 0, see `segpic info`) "
                   "into an RGBA image, transparent elsewhere.")
@output_format_options
@strip_option
@handle_errors
def decode(src: Path, dst: Path, weights: Path | None, device: str, region: str | None,
           strip: bool, output_format: str | None, jpeg_quality: int,
           webp_quality: int | None) -> None:
    """Decode a .spic file (any codec) into an image of the original size, in the
    format DST's extension names (.png, .jpg/.jpeg, .webp, .tif/.tiff, .ppm) or
    --format, with the file's ICC profile, EXIF and XMP where the format holds them
    (unless --strip). `-` for SRC reads standard input; `-` for DST writes a PNG
    (or --format) to standard output."""
    regions = None if region is None else _region_list(region)
    output = ImageOutput(output_format, jpeg_quality, webp_quality)
    check_output(dst)
    pixels = decode_file(DecoderCache(weights, device), src, dst, regions, strip, output)
    layers = "" if regions is None else f", regions {','.join(map(str, regions))} (RGBA)"
    click.echo(f"{display(src)} -> {display(dst, stdin=False)}: "
               f"{pixels.shape[1]}x{pixels.shape[0]}{layers}", err=is_stdio(dst))


def _region_list(text: str) -> tuple[int, ...]:
    try:
        regions = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a list of region numbers (e.g. 0 or 1,2)",
                                 param_hint="--region") from None
    if not regions or regions[0] < 0:
        raise click.BadParameter(f"{text!r}: region numbers start at 0", param_hint="--region")
    return regions


@main.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--latents", is_flag=True,
              help="moric: also split the latent bits among the regions (decodes the "
                   "latents: about a second for a Kodak image).")
@handle_errors
def info(src: Path, as_json: bool, latents: bool) -> None:
    """Show the header, stream sizes and bpp of a .spic file (no weights, no torch);
    `-` reads it from standard input."""
    data = read_spic(src)
    frame, fields = codecs.describe(data, details=2 if latents else 1)
    names = fields.pop("stream_names")
    regions = fields.pop("region_table", None)
    pixels = frame.width * frame.height
    summary = {
        "file": display(src),
        "format_version": frame.version,
        "codec": frame.codec,
        **fields,
        "width": frame.width,
        "height": frame.height,
        "bytes": len(data),
        "bpp": 8 * len(data) / pixels,
        "header_bytes": frame.offset,
        "overhead_bytes": len(data) - sum(frame.stream_lengths),
        "streams": [{"name": n, "bytes": b}
                    for n, b in zip(names, frame.stream_lengths, strict=True)],
        # ICC profile, EXIF, XMP: counted in header_bytes and overhead_bytes
        "metadata": [{"kind": kind, "bytes": len(box)} for kind, box in frame.metadata.items()],
        # the --bpp/--size/--psnr that chose the quality (in the XMP box), or None
        "target": target_record.read(frame.metadata),
    }
    if regions is not None:
        summary["region_table"] = regions
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    from rich.console import Console  # here: decoding and encoding do not need them
    from rich.table import Table

    out = Console()
    table = Table(title=display(src), show_header=True, header_style="bold")
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if key not in ("file", "bpp", "streams", "region_table", "metadata", "target"):
            table.add_row(key, str(value))
    if summary["target"] is not None:
        target = summary["target"]
        table.add_row("target", f"{target['kind']} {target['value']:g}"
                      f"{'' if target['met'] else ' (not met: best effort)'}")
    table.add_row("bpp", f"{summary['bpp']:.4f}")
    for entry in summary["streams"]:
        table.add_row(f"stream {entry['name']}",
                      f"{entry['bytes']} B ({8 * entry['bytes'] / pixels:.4f} bpp)")
    for entry in summary["metadata"]:
        table.add_row(f"metadata {entry['kind']}", f"{entry['bytes']} B")
    out.print(table)
    if regions is not None:
        out.print(_region_table(regions, pixels))


def _region_table(regions: list[dict], pixels: int) -> Any:
    """The rich Table of `segpic info --regions`."""
    from rich.table import Table

    latents = all("latent_bits" in r for r in regions)
    title = ("regions (bytes: information content; the latents are shared, each one "
             "split by the pixels of its block)" if latents else
             "regions (the latents are shared by all coded regions: see --latents)")
    table = Table(title=title, header_style="bold")
    for column in ("region", "pixels", "coded", "contour chains", "contour bytes",
                   "LSN bytes") + ("latent bytes",) * latents:
        table.add_column(column, justify="right")
    for r in regions:
        table.add_row(str(r["region"]), f"{r['pixels']} ({100 * r['share']:.1f}%)",
                      "yes" if r["coded"] else "no (transparent)",
                      str(r["contour_chains"]), f"{r['contour_bits'] / 8:.1f}",
                      f"{r['lsn_bits'] / 8:.1f}",
                      *([f"{r['latent_bits'] / 8:.1f}"] if latents else []))
    return table
