"""`segpic bench`: rate-distortion and speed of segpic against classic image codecs.

Every codec writes a real file in memory (segpic: a real .spic stream; the others:
Pillow or a Pillow plugin saving to a BytesIO), the file is decoded back, and
bpp = 8 * file bytes / pixels. PSNR is on 8-bit RGB, MS-SSIM comes from
pytorch-msssim (data_range=255, RGB, float32), both against the 8-bit source.
Per setting, bpp, PSNR and MS-SSIM are the means over the images (PSNR: the mean
of per-image PSNR), exactly as CompressAI's results are made, so the JSON files
written here can be compared with (and plotted by) CompressAI's tools.

    segpic bench rd                    # Kodak, every codec, bench/results/kodak
    segpic bench rd --quick            # 2 images, 2-4 settings per codec (CI)
    segpic bench rd photos/ --out /tmp/b --codecs segpic,jpeg --threads 4
    segpic bench points IMG.png --codec moric --quality 1,2.5 --steps 1000 --out p.jsonl
    segpic bench speed steps|layered|memory|process|decode|batch ...
    segpic bench table runs|regions ...

(`segpic bench [SRC] [OPTIONS]` with no subcommand runs `rd`, as before.)

The parts, in the order the data flows:

    config    RunConfig: what one `rd` run measures and where it writes
    codecs    the codec registry (CODECS: key -> factory) and the codecs themselves
    metrics   PSNR and MS-SSIM
    bd_rate   BD-rate (VCEG-M33, cubic fit, points <= 2 bpp)
    anchors   the published curves and the harness check of our JPEG/WebP
    report    environment, speed medians, summary.json, results.md
    plot      rd.png (each curve its own colour and marker)
    runner    which images, measuring, means per setting; run_bench
    rd, points, speed, table   the subcommands (speed's decode: `decode_speed`)
    command   the click group `bench`
    common    BenchError, repository and shared-data paths, a codec's measure
              hooks, number formatting

Shared data (Kodak, anchors) is found through $SEGPIC_SHARED (see
segpic_codec.shared_data). What needs a codec's insides (MoRIC's step time,
layered decoding, stream sizes) lives in that codec's `measure` module,
reached through the codec registry.

Heavy imports (torch, matplotlib, pytorch-msssim, Pillow plugins) stay inside
functions so that `segpic --help` and `segpic info` stay fast and torch-free.
Every failure is one line and a non-zero exit (click.ClickException), never a
traceback.
"""

from .command import bench

__all__ = ["bench"]
