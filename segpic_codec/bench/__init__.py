"""`segpic bench`: rate-distortion and speed of segpic against classic image codecs.

Every codec writes a real file in memory (segpic: a real .spic stream; the others:
Pillow or a Pillow plugin saving to a BytesIO), the file is decoded back, and
bpp = 8 * file bytes / pixels. PSNR is on 8-bit RGB, MS-SSIM comes from
pytorch-msssim (data_range=255, RGB, float32), both against the 8-bit source.
Per setting, bpp, PSNR and MS-SSIM are the means over the images (PSNR: the mean
of per-image PSNR), exactly as CompressAI's results are made, so the JSON files
written here can be compared with (and plotted by) CompressAI's tools.

    segpic bench                       # Kodak, every codec, bench/results/kodak
    segpic bench --quick               # 2 images, 2-4 settings per codec (CI)
    segpic bench photos/ --out /tmp/b --codecs segpic,jpeg --threads 4

The parts:

    codecs    the codec registry (CODECS: key -> factory) and the codecs themselves
    metrics   PSNR and MS-SSIM
    bd_rate   BD-rate (VCEG-M33, cubic fit, points <= 2 bpp)
    anchors   the published curves and the harness check of our JPEG/WebP
    runner    RunConfig, which images, measuring, means per setting, speed; run_bench
    report    environment, summary.json, results.md
    plot      rd.png
    command   the click command `bench`
    common    BenchError, repository paths, number formatting

Heavy imports (torch, matplotlib, pytorch-msssim, Pillow plugins) stay inside
functions so that `segpic --help` and `segpic info` stay fast and torch-free.
Every failure is one line and a non-zero exit (click.ClickException), never a
traceback.
"""

from .command import bench

__all__ = ["bench"]
