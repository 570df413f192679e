"""crawl: URL lists, metadata, feeds, YouTube info JSON, pytube, failures and resume.

Everything is offline: a web server on 127.0.0.1 (tests/webserver.py) serves real audio
made from ../shared, a podcast feed, a page with an <audio> tag and misbehaving routes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from pathlib import Path

import pytest

from audioprep.crawl import rss
from audioprep.crawl.http import download, is_transient
from audioprep.crawl.options import FetchOptions, item_id, parse_rate
from audioprep.crawl.schema import Filters, from_ytdlp
from audioprep.crawl.urls import collect, parse_line, read_url_file
from audioprep.errors import ItemError, UsageError
from audioprep.manifests.ids import is_safe_id
from audioprep.testing import LIBRI, cli, ffmpeg, read_jsonl, require_shared
from webserver import WebServer

FAST = ["--retries", "1", "--retry-wait", "0.05", "-q"]


# -- the server and its files -----------------------------------------------------------
def _feed(base: str) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">
<channel><title>Night Talks</title><link>{base}/pages/show.html</link>
<itunes:author>Ann Host</itunes:author><description>A show.</description>
<item><title>Episode 1: ../../etc/passwd</title><guid isPermaLink="false">night-ep-1</guid>
<link>{base}/pages/ep1.html</link><pubDate>Tue, 05 Mar 2024 10:00:00 +0000</pubDate>
<description>First one &amp; only.</description><itunes:duration>00:00:15</itunes:duration>
<enclosure url="{base}/files/ep1.mp3" length="0" type="audio/mpeg"/></item>
<item><title>Episode 2 / slashes</title><guid>night-ep-2</guid>
<itunes:author>Guest Bob</itunes:author><pubDate>Wed, 06 Mar 2024 10:00:00 +0000</pubDate>
<description>Second.</description><itunes:duration>13</itunes:duration>
<enclosure url="{base}/files/ep2.mp3" length="0" type="audio/mpeg"/></item>
<item><title>Bonus: outtakes</title><guid>night-bonus</guid>
<pubDate>Mon, 01 Jan 2024 10:00:00 +0000</pubDate>
<description>Old.</description><itunes:duration>3</itunes:duration>
<enclosure url="{base}/files/ep3.mp3" length="0" type="audio/mpeg"/></item>
</channel></rss>"""


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory):
    require_shared()
    root = tmp_path_factory.mktemp("web")
    flacs = sorted((LIBRI / "1688").glob("*.flac"))
    for i, flac in enumerate(flacs[:4], start=1):
        ffmpeg("-i", str(flac), "-c:a", "libmp3lame", "-b:a", "64k", str(root / f"ep{i}.mp3"))
    ffmpeg("-i", str(flacs[4]), str(root / "direct.wav"))
    ffmpeg("-i", str(flacs[5]), "-c:a", "libopus", "-b:a", "48k", str(root / "yt251.webm"))
    ffmpeg("-i", str(flacs[5]), "-c:a", "aac", "-b:a", "64k", str(root / "yt140.m4a"))
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-i", str(flacs[5]),
        "-shortest", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
        str(root / "yt18.mp4"),
    )  # fmt: skip
    server = WebServer(root)
    (root / "feed.xml").write_text(_feed(server.base), encoding="utf-8")
    (root / "page.html").write_text(
        "<html><head><title>A page</title></head><body><p>Listen:</p>"
        '<audio src="/files/ep3.mp3" controls></audio></body></html>',
        encoding="utf-8",
    )
    server.root = root  # type: ignore[attr-defined]
    yield server
    server.close()


@pytest.fixture
def fresh(web: WebServer) -> WebServer:
    web.hits.clear()
    web.foreign.clear()
    return web


def _refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/gone.mp3"  # nothing listens there any more


def _no_network_env(web: WebServer) -> dict[str, str]:
    """Send any request for another host to the test server (as a proxy), which logs it."""
    return {
        **os.environ,
        "HTTP_PROXY": web.base,
        "HTTPS_PROXY": web.base,
        "http_proxy": web.base,
        "https_proxy": web.base,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def _media_gets(web: WebServer) -> list[str]:
    return [h.path for h in web.hits if h.method == "GET" and not h.path.startswith("/pages/")]


# -- pure parts -------------------------------------------------------------------------
def test_url_file_comments_commas_and_genres(tmp_path: Path) -> None:
    f = tmp_path / "urls.txt"
    f.write_text(
        "# my ASMR list\n"
        "\n"
        "https://a.org/1.mp3, https://a.org/2.mp3,\n"
        "genre=nature genre_keyword=fire\n"
        "https://a.org/3.mp3   # crackling\n"
        'https://a.org/4.mp3 genre_keyword="rain on tent"\n'
        '"ytsearch2:rain sounds"\n',
        encoding="utf-8",
    )
    items = read_url_file(f, genre="misc")
    assert [i.url for i in items] == [
        "https://a.org/1.mp3",
        "https://a.org/2.mp3",
        "https://a.org/3.mp3",
        "https://a.org/4.mp3",
        "ytsearch2:rain sounds",
    ]
    assert [(i.genre, i.genre_keyword) for i in items] == [
        ("misc", ""),
        ("misc", ""),
        ("nature", "fire"),
        ("nature", "rain on tent"),
        ("nature", "fire"),
    ]
    assert items[2].origin.endswith("urls.txt:5")
    f.write_text("https://a.org/1.mp3\nrain sounds\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"urls.txt:2: 'rain' is neither a URL"):
        read_url_file(f)
    with pytest.raises(UsageError, match="--genre"):
        collect(["genre=x"])
    assert parse_line("https://a.org/x.mp3#t=5") == (["https://a.org/x.mp3#t=5"], {})


def test_ids_come_from_the_site_never_the_title() -> None:
    assert item_id("Youtube", "aBcDeFgHiJk", "https://youtu.be/aBcDeFgHiJk") == (
        "youtube-aBcDeFgHiJk"
    )
    weird = item_id("generic", "../../x", "https://a.org/../../etc/passwd%00.mp3#frag")
    assert is_safe_id(weird) and "/" not in weird and ".." not in weird
    # the same site id gives the same id; another gives another
    assert item_id("rss", "g1", "https://a.org/e.mp3") == item_id(
        "rss", "g1", "https://a.org/e.mp3"
    )
    assert item_id("rss", "g1", "https://a.org/e.mp3") != item_id(
        "rss", "g2", "https://a.org/e.mp3"
    )


def test_filters_and_options() -> None:
    f = Filters(date_after="20240301", match_title="episode", max_duration=14)
    assert f.reason({"title": "Episode 1", "publish_date": "20240305", "duration": 10}) is None
    assert "before --date-after" in f.reason({"title": "Episode", "publish_date": "20240101"})
    assert "does not match" in f.reason({"title": "Bonus"})
    assert "longer than --max-duration" in f.reason({"title": "episode", "duration": 15})
    with pytest.raises(UsageError):
        Filters(date_after="20240301", date_before="20240101").check()
    with pytest.raises(UsageError):
        Filters(match_title="(").check()
    assert parse_rate("1.5M") == 1.5 * 1024 * 1024
    with pytest.raises(UsageError):
        parse_rate("fast")


def test_feed_parsing_reads_what_ytdlp_leaves_out(fresh: WebServer) -> None:
    feed = rss.parse_feed((fresh.root / "feed.xml").read_bytes())  # type: ignore[attr-defined]
    assert feed is not None and feed.title == "Night Talks" and feed.author == "Ann Host"
    first, second, _ = feed.episodes
    assert (first.guid, first.author, first.publish_date) == ("night-ep-1", "Ann Host", "20240305")
    assert first.link.endswith("/pages/ep1.html")
    assert second.author == "Guest Bob" and second.link == ""
    assert rss.parse_feed(b"<html><body>no</body></html>") is None
    assert rss.parse_feed(b"not xml at all") is None


def test_transient_failures_are_told_from_permanent_ones() -> None:
    assert is_transient(ConnectionResetError(104, "Connection reset by peer"))
    assert is_transient(ItemError("HTTP Error 503: Service Unavailable"))
    assert not is_transient(ItemError("HTTP Error 404: Not Found"))
    assert not is_transient(ValueError("bad"))


@pytest.mark.slow
def test_download_resumes_a_part_file_and_limits_its_rate(fresh: WebServer, tmp_path: Path):
    src = fresh.root / "ep1.mp3"  # type: ignore[attr-defined]
    dest = tmp_path / "ep1.mp3"
    with pytest.raises(ItemError, match="connection dropped"):
        download(fresh.url("drop-1/ep1.mp3"), dest)
    part = tmp_path / "ep1.mp3.part"
    assert not dest.exists() and 0 < part.stat().st_size < src.stat().st_size
    t0 = time.monotonic()
    download(fresh.url("drop-1/ep1.mp3"), dest, rate_limit=40_000)
    took = time.monotonic() - t0
    assert dest.read_bytes() == src.read_bytes() and not part.exists()
    ranges = [h.range for h in fresh.downloads("ep1.mp3")]
    assert ranges == [None, f"bytes={part_size(src) // 2}-"]
    # what was left (about 60 kB) at 40 kB/s cannot take much less than 1.5 s
    assert took > 0.75 * (src.stat().st_size - src.stat().st_size // 2) / 40_000


def part_size(path: Path) -> int:
    return path.stat().st_size


# -- the stage through the CLI ----------------------------------------------------------
@pytest.mark.slow
def test_feed_page_and_direct_files_become_a_manifest(fresh: WebServer, tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text(
        f"# podcasts\n{fresh.url('pages/feed.xml')} genre=talk genre_keyword=night\n"
        f"{fresh.url('files/direct.wav')}, {fresh.url('pages/page.html')}\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    cli("crawl", "--from-file", urls, out, *FAST, "-j2")
    records = read_jsonl(out / "manifest.jsonl")
    by_title = {r["source"]["title"]: r for r in records}
    assert len(records) == 5, [r["source"]["title"] for r in records]
    ep1 = by_title["Episode 1: ../../etc/passwd"]
    src = ep1["source"]
    assert src["id"] == "night-ep-1"
    assert src["author"] == "Ann Host"  # itunes:author of the channel
    assert by_title["Episode 2 / slashes"]["source"]["author"] == "Guest Bob"  # of the item
    assert src["publish_date"] == "20240305"
    assert src["description"] == "First one & only."
    assert src["duration"] == 15.0
    assert src["channel_url"] == fresh.url("pages/ep1.html")
    assert by_title["Episode 2 / slashes"]["source"]["channel_url"] == fresh.url("files/ep2.mp3")
    assert (src["genre"], src["genre_keyword"], src["comment"]) == ("talk", "night", "")
    assert src["playlist"] == "Night Talks" and src["playlist_url"] == fresh.url("pages/feed.xml")
    assert src["extractor"] == "rss"
    text = (out / "manifest.jsonl").read_text(encoding="utf-8")
    assert "__youtubedl_smuggle" not in text
    for r in records:
        assert is_safe_id(r["id"]) and "passwd" not in r["id"] and "slashes" not in r["id"]
        assert re.fullmatch(rf"audio/{re.escape(r['id'])}\.(mp3|wav)", r["audio"])
        served = fresh.root / Path(r["source"]["channel_url"]).name  # type: ignore[attr-defined]
        on_disk = out / r["audio"]
        assert r["source"]["file_size"] == on_disk.stat().st_size
        if served.suffix in (".mp3", ".wav") and served.exists():
            assert on_disk.read_bytes() == served.read_bytes()
        assert r["sample_rate"] == 16000 and r["channels"] == 1 and r["duration"] > 1
    page = next(r for r in records if r["source"]["url"] == fresh.url("pages/page.html"))
    assert (out / page["audio"]).read_bytes() == (fresh.root / "ep3.mp3").read_bytes()  # type: ignore[attr-defined]
    assert {r["source"]["genre"] for r in records if "feed" not in r["source"]["url"]} == {""}
    stage = json.loads((out / "stage.json").read_text())
    assert stage["items_ok"] == 5 and "yt-dlp" in stage["tools"]
    assert not (out / ".partial").exists()

    # a second run lists the feed again but downloads nothing
    before = (out / "manifest.jsonl").read_bytes()
    fresh.hits.clear()
    proc = cli("crawl", "--from-file", urls, out, *FAST)
    assert _media_gets(fresh) == []
    assert "5 already done" in proc.stderr
    assert (out / "manifest.jsonl").read_bytes() == before


@pytest.mark.slow
def test_network_failures_land_in_errors_and_the_rest_completes(
    fresh: WebServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    good = fresh.url("files/ep4.mp3")
    missing = fresh.url("files/missing.mp3")
    refused = _refused_url()
    dropped = fresh.url("drop/ep2.mp3")
    proc = cli("crawl", missing, good, refused, dropped, out, *FAST, check=False)
    assert proc.returncode == 1, proc.stderr
    errors = {e["record"]["source"]["url"]: e["reason"] for e in read_jsonl(out / "errors.jsonl")}
    assert set(errors) == {missing, refused, dropped}
    assert "404" in errors[missing] and missing in errors[missing]
    assert "refused" in errors[refused].lower() and "after 2 attempts" in errors[refused]
    assert "after 2 attempts" in errors[dropped]
    (record,) = read_jsonl(out / "manifest.jsonl")
    assert record["source"]["url"] == good
    # the cut download was tried again from where it stopped, and kept for the next run
    ranges = [h.range for h in fresh.downloads("ep2.mp3")]
    assert any(r and r.startswith("bytes=") and r != "bytes=0-" for r in ranges), ranges
    assert list((out / ".partial").glob("*.part"))


@pytest.mark.slow
def test_a_partial_download_resumes_on_the_next_run(fresh: WebServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    url = fresh.url("drop-2/ep3.mp3")  # the 1st GET is yt-dlp's probe, the 2nd its download
    proc = cli("crawl", url, out, "--retries", "0", "-q", check=False)
    assert proc.returncode == 1
    assert read_jsonl(out / "manifest.jsonl") == []
    (part,) = (out / ".partial").glob("*.part")
    have = part.stat().st_size
    assert have > 0
    assert not list((out / "audio").iterdir())  # nothing recorded that did not finish
    cli("crawl", url, out, "--retries", "0", "-q")
    (record,) = read_jsonl(out / "manifest.jsonl")
    full = (fresh.root / "ep3.mp3").read_bytes()  # type: ignore[attr-defined]
    assert (out / record["audio"]).read_bytes() == full
    ranges = [h.range for h in fresh.downloads("ep3.mp3")]
    assert ranges[:2] == [None, None] and ranges[-1] == f"bytes={have}-", ranges
    assert read_jsonl(out / "errors.jsonl") == [] and not (out / ".partial").exists()


@pytest.mark.slow
def test_filters_reject_with_reasons_and_max_items_caps(fresh: WebServer, tmp_path: Path) -> None:
    feed = fresh.url("pages/feed.xml")
    out = tmp_path / "dated"
    cli("crawl", feed, out, "--date-after", "2024-03-01", "--match-title", "^episode", *FAST)
    kept = [r["source"]["title"] for r in read_jsonl(out / "manifest.jsonl")]
    assert kept == ["Episode 1: ../../etc/passwd", "Episode 2 / slashes"]
    (rejected,) = read_jsonl(out / "rejected.jsonl")
    assert rejected["record"]["source"]["entry"]["title"] == "Bonus: outtakes"
    assert "does not match --match-title" in rejected["reason"]
    assert fresh.downloads("ep3.mp3") == []  # filtered from the listing, never fetched

    out = tmp_path / "short"
    cli("crawl", feed, out, "--max-duration", "14", "--max-items", "1", *FAST)
    assert [r["source"]["title"] for r in read_jsonl(out / "manifest.jsonl")] == [
        "Episode 2 / slashes"
    ]
    assert [r["reason"] for r in read_jsonl(out / "rejected.jsonl")] == [
        "longer than --max-duration 14 s (15 s)"
    ]
    # the real duration is only known once fetched: a direct file is filtered after download
    out = tmp_path / "direct"
    cli("crawl", fresh.url("files/direct.wav"), out, "--match-title", "nothing-like-it", *FAST)
    assert read_jsonl(out / "manifest.jsonl") == []
    assert "does not match" in read_jsonl(out / "rejected.jsonl")[0]["reason"]


@pytest.mark.slow
def test_download_archive_skips_what_another_crawl_fetched(
    fresh: WebServer, tmp_path: Path
) -> None:
    archive = tmp_path / "archive.txt"
    feed = fresh.url("pages/feed.xml")
    cli("crawl", feed, tmp_path / "week1", "--archive", archive, *FAST)
    assert len(archive.read_text().splitlines()) == 3
    fresh.hits.clear()
    cli("crawl", feed, tmp_path / "week2", "--archive", archive, *FAST)
    assert _media_gets(fresh) == []
    rejected = read_jsonl(tmp_path / "week2" / "rejected.jsonl")
    assert len(rejected) == 3 and all("archive" in r["reason"] for r in rejected)


def _youtube_info(web: WebServer, *, webm: str, m4a: str) -> dict:
    root = web.root  # type: ignore[attr-defined]
    return {
        "_type": "video",
        "id": "aBcDeFgHiJk",
        "title": "Rain on a tent / 10 hours ../../x",
        "extractor": "youtube",
        "extractor_key": "Youtube",
        "webpage_url": "https://www.youtube.com/watch?v=aBcDeFgHiJk",
        "original_url": "https://youtu.be/aBcDeFgHiJk",
        "uploader": "Calm Sounds",
        "uploader_id": "@calmsounds",
        "uploader_url": "https://www.youtube.com/@calmsounds",
        "channel": "Calm Sounds",
        "channel_id": "UCabcdefghijklmnopqrstuv",
        "channel_url": "https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv",
        "upload_date": "20240102",
        "timestamp": 1704200000,
        "duration": 7,
        "description": "Gentle rain.\nNo talking.",
        "view_count": 1234,
        "tags": ["asmr", "rain"],
        "formats": [
            {
                "format_id": "140",
                "url": web.url(m4a),
                "ext": "m4a",
                "acodec": "mp4a.40.2",
                "vcodec": "none",
                "abr": 64,
                "protocol": "http",
                "filesize": (root / "yt140.m4a").stat().st_size,
            },
            {
                "format_id": "18",
                "url": web.url("files/yt18.mp4"),
                "ext": "mp4",
                "acodec": "mp4a.40.2",
                "vcodec": "avc1.42001E",
                "width": 160,
                "height": 120,
                "protocol": "http",
            },
            {
                "format_id": "251",
                "url": web.url(webm),
                "ext": "webm",
                "acodec": "opus",
                "vcodec": "none",
                "abr": 130,
                "protocol": "http",
                "filesize": (root / "yt251.webm").stat().st_size,
            },
        ],
    }


@pytest.mark.slow
def test_youtube_info_json_through_ytdlp_never_touches_the_network(
    fresh: WebServer, tmp_path: Path
) -> None:
    good = tmp_path / "good.info.json"
    good.write_text(
        json.dumps(_youtube_info(fresh, webm="files/yt251.webm", m4a="files/yt140.m4a"))
    )
    gone = tmp_path / "gone.info.json"
    gone_info = _youtube_info(fresh, webm="files/gone.webm", m4a="files/gone.m4a")
    gone_info["id"] = "zYxWvUtSrQp"
    gone.write_text(json.dumps(gone_info))
    out = tmp_path / "out"
    env = _no_network_env(fresh)
    proc = cli("crawl", good, gone, out, "--genre", "nature", *FAST, env=env, check=False)
    assert fresh.foreign == [], "crawl tried to reach another host"
    assert proc.returncode == 1
    (record,) = read_jsonl(out / "manifest.jsonl")
    src = record["source"]
    assert record["id"] == "youtube-aBcDeFgHiJk" and record["audio"].endswith(".webm")
    assert src["id"] == "aBcDeFgHiJk" and src["extractor"] == "youtube"
    assert src["author"] == "Calm Sounds" and src["title"].startswith("Rain on a tent")
    assert src["channel_url"] == "https://www.youtube.com/watch?v=aBcDeFgHiJk"
    assert src["uploader_url"] == "https://www.youtube.com/@calmsounds"
    assert src["publish_date"] == "20240102" and src["description"] == "Gentle rain.\nNo talking."
    assert src["duration"] == 7.0 and src["format_id"] == "251"  # the best audio-only format
    assert src["genre"] == "nature" and src["comment"] == ""
    assert src["file_size"] == (fresh.root / "yt251.webm").stat().st_size  # type: ignore[attr-defined]
    (error,) = read_jsonl(out / "errors.jsonl")
    assert error["id"] == "youtube-zYxWvUtSrQp" and "404" in error["reason"]

    # the guard above can fail: a live YouTube URL does try the outside, and is caught
    live = "https://www.youtube.com/watch?v=aBcDeFgHiJk"
    proc = cli("crawl", live, tmp_path / "live", *FAST, env=env, check=False)
    assert proc.returncode == 1 and any("youtube.com" in f for f in fresh.foreign)
    (error,) = read_jsonl(tmp_path / "live" / "errors.jsonl")
    assert live in error["reason"] and "please report" not in error["reason"]


# -- pytube -----------------------------------------------------------------------------
def test_pytube_url_parsing() -> None:
    from audioprep.crawl.pytube_backend import PytubeBackend, url_kind

    assert url_kind("https://www.youtube.com/watch?v=aBcDeFgHiJk") == "video"
    assert url_kind("https://youtu.be/aBcDeFgHiJk?t=3") == "video"
    assert url_kind("https://www.youtube.com/shorts/aBcDeFgHiJk") == "video"
    assert url_kind("https://www.youtube.com/watch?v=aBcDeFgHiJk&list=PLx") == "video"
    assert url_kind("https://www.youtube.com/playlist?list=PLabcdef") == "playlist"
    assert url_kind("https://www.youtube.com/@calmsounds/videos") == "channel"
    assert url_kind("https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv") == "channel"
    assert url_kind("https://feeds.example.org/show.xml") == ""
    backend = PytubeBackend(FetchOptions())
    (entry,) = backend.expand(collect(["https://youtu.be/aBcDeFgHiJk"])[0])
    assert entry["_key"]["id"] == "youtube-aBcDeFgHiJk"
    with pytest.raises(UsageError, match="--backend yt-dlp"):
        backend.check_url("https://feeds.example.org/show.xml")


def _pytube_video(web: WebServer) -> object:
    """A real pytube.YouTube whose page data is already loaded, streams on the test server."""
    from pytube import YouTube
    from pytube.streams import Stream

    yt = YouTube("https://www.youtube.com/watch?v=aBcDeFgHiJk")
    yt._watch_html = (
        '<meta itemprop="datePublished" content="2024-01-02">'
        '<script>var ytInitialPlayerResponse = {"playabilityStatus": {"status": "OK"}};</script>'
    )
    yt._vid_info = {
        "playabilityStatus": {"status": "OK"},
        "videoDetails": {
            "videoId": "aBcDeFgHiJk",
            "title": "Rain on a tent / 10 hours ../../x",
            "author": "Calm Sounds",
            "channelId": "UCabcdefghijklmnopqrstuv",
            "lengthSeconds": "7",
            "shortDescription": "Gentle rain.",
            "viewCount": "1234",
        },
    }
    root = web.root  # type: ignore[attr-defined]
    streams = [
        {
            "url": web.url("files/yt140.m4a") + "?signature=x",
            "itag": 140,
            "mimeType": 'audio/mp4; codecs="mp4a.40.2"',
            "bitrate": 64000,
            "contentLength": str((root / "yt140.m4a").stat().st_size),
            "is_otf": False,
        },
        {
            "url": web.url("files/yt251.webm") + "?signature=x",
            "itag": 251,
            "mimeType": 'audio/webm; codecs="opus"',
            "bitrate": 130000,
            "contentLength": str((root / "yt251.webm").stat().st_size),
            "is_otf": False,
        },
    ]
    yt._fmt_streams = [Stream(stream=s, monostate=yt.stream_monostate) for s in streams]
    return yt


def test_pytube_objects_map_to_the_schema_and_download(fresh: WebServer, tmp_path: Path) -> None:
    from audioprep.crawl.pytube_backend import PytubeBackend
    from audioprep.crawl.schema import from_pytube

    yt = _pytube_video(fresh)
    meta = from_pytube(yt, url="https://youtu.be/aBcDeFgHiJk", genre="nature")
    assert meta["id"] == "aBcDeFgHiJk" and meta["author"] == "Calm Sounds"
    assert meta["publish_date"] == "20240102" and meta["duration"] == 7.0
    assert meta["channel_url"] == "https://www.youtube.com/watch?v=aBcDeFgHiJk"
    assert meta["uploader_url"] == "https://www.youtube.com/channel/UCabcdefghijklmnopqrstuv"
    assert meta["genre"] == "nature" and meta["comment"] == ""
    backend = PytubeBackend(FetchOptions(retries=0))
    info, path = backend.fetch_from(yt, dest_dir=tmp_path, name="youtube-aBcDeFgHiJk")
    assert path.name == "youtube-aBcDeFgHiJk.webm"  # the higher-bitrate audio stream
    assert path.read_bytes() == (fresh.root / "yt251.webm").read_bytes()  # type: ignore[attr-defined]
    assert info["title"].startswith("Rain") and "251" in info["format"]
    from audioprep.crawl.options import Rejected

    picky = PytubeBackend(FetchOptions(filters=Filters(min_duration=60)))
    with pytest.raises(Rejected, match="min-duration"):
        picky.fetch_from(_pytube_video(fresh), dest_dir=tmp_path, name="again")


def test_pytube_backend_refuses_other_sites_before_running(tmp_path: Path) -> None:
    proc = cli(
        "crawl",
        "https://feeds.example.org/show.xml",
        tmp_path / "o",
        "--backend",
        "pytube",
        check=False,
    )
    assert proc.returncode == 2 and "--backend yt-dlp" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_bad_url_lines_are_refused_before_anything_runs(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("https://a.org/1.mp3\nnot a url\n", encoding="utf-8")
    proc = cli("crawl", "--from-file", urls, tmp_path / "o", check=False)
    assert proc.returncode == 2 and "urls.txt:2" in proc.stderr
    proc = cli("crawl", tmp_path / "o", check=False)
    assert proc.returncode == 2 and "at least one URL" in proc.stderr


def test_ytdlp_mapping_prefers_page_urls_without_fragments() -> None:
    meta = from_ytdlp(
        {
            "id": "x",
            "webpage_url": "https://a.org/e.mp3#__youtubedl_smuggle=%7B%7D",
            "timestamp": 0,
        },
        url="https://a.org/feed",
    )
    assert meta["channel_url"] == "https://a.org/e.mp3" and meta["publish_date"] == "19700101"


@pytest.mark.slow
def test_a_crawl_killed_mid_download_resumes_it(fresh: WebServer, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    url = fresh.url("files/ep1.mp3")
    args = [sys.executable, "-m", "audioprep", "crawl", url, str(out), "-j1", "-q"]
    args += ["--rate-limit", "40K"]  # about 3 s for this file
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    part = None
    while time.monotonic() < deadline and part is None:
        time.sleep(0.1)
        found = (
            [p for p in (out / ".partial").glob("*.part") if p.stat().st_size > 0]
            if (out / ".partial").is_dir()
            else []
        )
        part = found[0] if found else None
    assert part is not None, "the download never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    have = part.stat().st_size
    assert not (out / "manifest.jsonl").exists() and not list((out / "audio").iterdir())
    fresh.hits.clear()
    cli("crawl", url, out, "-j1", "-q", "--rate-limit", "40K")
    (record,) = read_jsonl(out / "manifest.jsonl")
    assert (out / record["audio"]).read_bytes() == (fresh.root / "ep1.mp3").read_bytes()  # type: ignore[attr-defined]
    ranges = [h.range for h in fresh.downloads("ep1.mp3") if h.range]
    assert ranges == [f"bytes={have}-"], (ranges, have)  # resumed where the kill left it


@pytest.mark.slow
def test_video_keeps_the_picture_for_a_later_convert(fresh: WebServer, tmp_path: Path) -> None:
    info = tmp_path / "v.info.json"
    data = _youtube_info(fresh, webm="files/yt251.webm", m4a="files/yt140.m4a")
    info.write_text(json.dumps(data))
    cli("crawl", info, tmp_path / "video", "--video", *FAST, env=_no_network_env(fresh))
    (record,) = read_jsonl(tmp_path / "video" / "manifest.jsonl")
    assert record["source"]["format_id"] == "18" and record["source"]["has_video"] is True
    assert record["audio"].endswith(".mp4") and record["channels"] == 1
    cli("convert", tmp_path / "video", tmp_path / "wav", "--sample-rate", "16000")
    (wav,) = read_jsonl(tmp_path / "wav" / "manifest.jsonl")
    assert wav["audio"].endswith(".wav") and wav["duration"] == pytest.approx(
        record["duration"], abs=0.1
    )
    assert fresh.foreign == []
