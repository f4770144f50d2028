"""finder.ingest.video_sample (which keyframes to decode and keep) and video_facts (the
container's tags), on made-up keyframe times and tags: the rules themselves."""

from __future__ import annotations

import numpy as np
import pytest

from finder.ingest.video_facts import parse_iso6709, video_facts
from finder.ingest.video_sample import SAMPLING, Sampler, Sampling, thin


def flat(value: int) -> np.ndarray:
    return np.full((32, 32, 3), value, np.uint8)


def run(sampler: Sampler, keys: list[float], scene_of) -> list[float]:
    """Offer each keyframe the sampler wants, showing scene ``scene_of(t)``; the times kept."""
    for t in keys:
        if sampler.wants(t):
            sampler.offer(t, flat(40 * scene_of(t) % 250))
    return [k.time for k in sampler.frames()]


def test_cap_grows_slower_than_the_video() -> None:
    """A 12 s clip keeps a frame a second; a minute its pace frames and as many scene changes
    again; an hour costs a few hundred frames, not twelve a minute."""
    cap = SAMPLING.cap
    assert cap(12) >= 12 and cap(60) >= 60 / SAMPLING.pace + 10
    assert cap(600) < 10 * cap(60) and cap(3600) < 6 * cap(600) and 150 <= cap(3600) <= 300
    assert SAMPLING.pace_for(60) == SAMPLING.pace
    assert SAMPLING.pace_for(3600) == pytest.approx(3600 / cap(3600))  # stretched to the cap


def test_calm_footage_is_probed_about_once_a_pace() -> None:
    """A keyframe every second, nothing changes: probes back off to one per pace, each kept
    as a pace frame."""
    s = Sampler(60.0)
    kept = run(s, [float(t) for t in range(60)], lambda t: 0)
    pace = SAMPLING.pace
    assert s.probes <= 60 / pace + 4
    assert all(pace - 0.1 <= b - a <= 2 * pace for a, b in zip(kept, kept[1:], strict=False))
    assert 60 / pace - 3 <= len(kept) <= 60 / pace + 1


def test_after_a_cut_probes_follow_the_length_of_shots() -> None:
    """Shots of 12 s: after each cut the next probe comes half a shot later, not a second
    later, and every shot still has its frame."""
    s = Sampler(120.0)
    kept = run(s, [float(t) for t in range(120)], lambda t: int(t // 12))
    assert {int(t // 12) for t in kept} == set(range(10))
    assert s.probes <= 120 / 3


def test_changing_footage_is_probed_every_second() -> None:
    s = Sampler(12.0)
    kept = run(s, [float(t) for t in range(12)], lambda t: t)
    assert kept == [float(t) for t in range(12)] and s.probes == 12


def test_a_keyframe_out_of_rhythm_is_always_probed() -> None:
    """An encoder's keyframes every 8 s, plus one at a cut at 17.5 s: that one is read, though
    the pace would skip it."""
    keys = [0.0, 8.0, 16.0, 17.5, 25.5, 33.5]
    s = Sampler(40.0, Sampling(min_gap=5.0))  # a large gap: only the rhythm rule reads 17.5
    kept = run(s, keys, lambda t: 0 if t < 17.5 else 1)
    assert 17.5 in kept


def test_over_the_cap_scene_changes_stay_and_memory_stays_bounded() -> None:
    """600 s with a change every second: at most twice the cap is ever held, and the cap keeps
    the first frame and the strongest changes."""
    s = Sampler(600.0)
    most = 0
    for t in range(600):
        if s.wants(float(t)):
            s.offer(float(t), flat((t * 37) % 250))
            most = max(most, len(s.kept))
    assert most <= 2 * s.cap
    frames = s.frames()
    assert len(frames) == s.cap and frames[0].time == 0.0
    assert [f.time for f in frames] == sorted(f.time for f in frames)


def test_thin_keeps_scenes_before_pace_frames() -> None:
    from finder.ingest.video_sample import Kept

    sig = np.zeros((16, 16, 3), np.float32)
    kept = [Kept(float(t), flat(0), sig, scene=t % 3 == 0, score=t / 100) for t in range(10)]
    out = thin(kept, 4)
    assert [k.time for k in out] == [0.0, 3.0, 6.0, 9.0]


@pytest.mark.parametrize(
    "text, lat, lon",
    [
        ("+48.8584+002.2945+035.000/", 48.8584, 2.2945),
        ("-33.8568+151.2153/", -33.8568, 151.2153),
        ("+4851.504+00217.670/", 48.8584, 2.29450),  # degrees and minutes
        ("+485130.24-0734807.2/", 48.8584, -73.802),  # degrees, minutes, seconds
        ("+40.7-074.0CRSWGS_84/", 40.7, -74.0),
    ],
)
def test_iso6709(text, lat, lon) -> None:
    got = parse_iso6709(text)
    assert got[0] == pytest.approx(lat, abs=1e-4) and got[1] == pytest.approx(lon, abs=1e-3)


@pytest.mark.parametrize(
    "text", ["", "nowhere", "+91.0+000.0/", "+00.0000+000.0000/", "+123456789+001.0/"]
)
def test_iso6709_refuses(text) -> None:
    assert parse_iso6709(text) == (None, None)


def test_dates_before_1980_are_no_dates() -> None:
    facts = video_facts(
        {"creation_time": "1904-01-01T00:00:00.000000Z"},
        width=4,
        height=3,
        duration=1.0,
        mtime_ns=1_600_000_000 * 10**9,
    )
    assert facts.date_source == "file"


def test_tags_in_any_case_and_android_names() -> None:
    facts = video_facts(
        {
            "COM.ANDROID.MANUFACTURER": "Google",
            "com.android.model": "Pixel 8",
            "LOCATION": "+1.5+2.5/",
        },
        width=4,
        height=3,
        duration=None,
        mtime_ns=None,
    )
    assert (facts.make, facts.model, facts.lat, facts.lon) == ("Google", "Pixel 8", 1.5, 2.5)
    assert facts.taken is None and facts.duration is None
