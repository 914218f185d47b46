"""Error screens: every mode renders and decodes, hostile text is safe, the documented API works."""

import subprocess

import pytest

from exstreamtv.engine.pipeline.error_screens import ErrorScreenGenerator, clean_text
from exstreamtv.streaming.error_screens import (ErrorAudioMode, ErrorScreenConfig, ErrorScreenMessage,
                                                ErrorVisualMode, get_error_screen_generator)

SMALL = dict(width=320, height=180, fps=15, preset="ultrafast", video_bitrate_kbps=300)


@pytest.fixture(scope="module")
def logo(ffmpeg, tmp_path_factory):
    f = tmp_path_factory.mktemp("logo") / "logo.png"
    subprocess.run([ffmpeg.path, "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=0x00ff00:s=120x80", "-frames:v",
                    "1", str(f)], check=True)
    return f


async def collect(gen, message, config, duration):
    data = b""
    async for chunk in gen.generate_error_stream(message, config, duration=duration):
        data += chunk
    return data


def probe(ffmpeg, data, tmp_path, name):
    f = tmp_path / name
    f.write_bytes(data)
    dec = subprocess.run([ffmpeg.path, "-hide_banner", "-v", "error", "-i", str(f), "-f", "null", "-"],
                         capture_output=True, text=True)
    info = subprocess.run([ffmpeg.path, "-hide_banner", "-i", str(f)], capture_output=True, text=True).stderr
    return dec, info


@pytest.mark.parametrize("visual", list(ErrorVisualMode))
async def test_every_visual_and_audio_mode_renders_and_decodes(visual, ffmpeg, tmp_path, logo):
    gen = ErrorScreenGenerator(ffmpeg.path, work_dir=tmp_path / "w")
    msg = ErrorScreenMessage(title="Off air", subtitle="Back soon", channel_name="News", channel_number=4,
                             estimated_return=120)
    for audio in ErrorAudioMode:
        cfg = ErrorScreenConfig(visual_mode=visual, audio_mode=audio, image_path=str(logo), **SMALL)
        data = await collect(gen, msg, cfg, 1.0)
        dec, info = probe(ffmpeg, data, tmp_path, f"{visual.value}-{audio.value}.ts")
        assert dec.returncode == 0 and dec.stderr == "", (visual, audio, dec.stderr)
        assert "Video: h264" in info and "320x180" in info and "Audio: aac" in info and "48000 Hz" in info
    await gen.pool.shutdown()


async def test_preview_colours_per_mode(ffmpeg, tmp_path, logo):
    gen = ErrorScreenGenerator(ffmpeg.path, work_dir=tmp_path / "w")
    msg = ErrorScreenMessage(title="T", subtitle="S")
    slate = await gen.render_preview_async(msg, ErrorScreenConfig(visual_mode="slate", background_color="#c03020",
                                                                  **SMALL))
    assert (slate.width, slate.height, len(slate.rgb)) == (320, 180, 320 * 180 * 3)
    r, g, b = slate.dominant_color()
    assert r >= 0xA0 and g <= 0x40 and b <= 0x30
    text = await gen.render_preview_async(msg, ErrorScreenConfig(visual_mode="text", background_color="#2040c0",
                                                                 **SMALL))
    r, g, b = text.dominant_color()
    assert b >= 0xB0 and r <= 0x30
    bars = await gen.render_preview_async(msg, ErrorScreenConfig(visual_mode="test_pattern", **SMALL))
    top = [bars.pixel(x, 20) for x in range(10, 320, 40)]
    assert len({(p[0] // 64, p[1] // 64, p[2] // 64) for p in top}) >= 5  # many different bar colours
    static = await gen.render_preview_async(msg, ErrorScreenConfig(visual_mode="static", image_path=str(logo),
                                                                   **SMALL))
    assert static.pixel(160, 68)[1] > 200 and static.pixel(160, 68)[0] < 60  # the green logo in the middle
    await gen.pool.shutdown()


HOSTILE = ["It's \"quoted\"", "a:b:c", "100% %{pts} %{eif\\:1}", "back\\slash\\", "two\nlines", "x" * 10_000,
           "[out];movie=/etc/passwd", "fontfile=/nope:text=pwn", "日本語 ✓ 🎬"]


@pytest.mark.parametrize("title", HOSTILE)
async def test_hostile_titles_render_safely(title, ffmpeg, tmp_path):
    gen = ErrorScreenGenerator(ffmpeg.path, work_dir=tmp_path / "w")
    msg = ErrorScreenMessage(title=title, subtitle=title, channel_name=title)
    cfg = ErrorScreenConfig(visual_mode="slate", **SMALL)
    argv = gen.build_command(msg, cfg, 1.0)
    graph = argv[argv.index("-i") + 1]
    assert title[:30] not in graph  # user text never enters the filtergraph itself
    data = await collect(gen, msg, cfg, 1.0)
    dec, _ = probe(ffmpeg, data, tmp_path, "h.ts")
    assert dec.returncode == 0 and dec.stderr == ""
    fields = gen.text_fields(msg)
    assert len(fields["title"]) <= 200
    if len(title) < 100 and "\n" not in title:
        assert fields["title"] == title
    await gen.pool.shutdown()


def test_bad_colour_and_mode_are_rejected_clearly():
    with pytest.raises(ValueError, match="colour must be #rrggbb, got 'red'"):
        ErrorScreenConfig(background_color="red")
    with pytest.raises(ValueError, match="'sparkles' is not a valid ErrorVisualMode"):
        ErrorScreenConfig(visual_mode="sparkles")
    assert clean_text("a\x00b\x1b[31mc") == "ab[31mc"


async def test_documented_snippet_runs_as_written(ffmpeg, tmp_path):
    # from the guide, verbatim apart from the duration
    generator = get_error_screen_generator()
    message = ErrorScreenMessage(title="Technical Difficulties", subtitle="We'll be right back")
    config = ErrorScreenConfig(visual_mode=ErrorVisualMode.TEXT, audio_mode=ErrorAudioMode.SINE_WAVE, **SMALL)
    data = b""
    async for chunk in generator.generate_error_stream(message, config, duration=3):
        data += chunk
    dec, info = probe(ffmpeg, data, tmp_path, "doc.ts")
    assert dec.returncode == 0 and dec.stderr == ""
    from exstreamtv.engine.stream.mpegts import scan_timeline

    tl = scan_timeline(data)
    assert 2.7 <= tl.video_pts[-1] - tl.video_pts[0] + 1 / 15 <= 3.2
    await generator.pool.shutdown()
    generator.pool = None  # the singleton is shared; let the next user make a fresh pool
