import pytest

import posinfo
from posinfo.settings import CHAPTERS, PROFILES, chapter_settings, check_value


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_table_is_valid(chapter, profile):
    settings = chapter_settings(chapter, profile)
    # The classifier chapters start at the reference code's seed at paper scale.
    paper_seed = profile == "paper" and chapter in ("gap_keeps_position", "channel_order")
    assert settings.profile == profile and settings.seed == (627937 if paper_seed else 0)
    assert chapter_settings(chapter, profile, seed=5).seed == 5


BAD = [
    ("profile", "huge", "profile must be one of"),
    ("padding", "mirror", "padding must be one of"),
    ("grid", 0, "grid must be an integer in"),
    ("grid", 2.5, "grid must be an integer"),
    ("epochs", "3", "epochs must be an integer"),
    ("background", 1, "background must be one of"),
    ("seed", -1, "seed must be an integer"),
    ("image_size", 1000, "image_size must be an integer in"),
    ("padding", None, None),  # None means "the profile's value": no error
    ("chance_margin", 2, "chance_margin must be a number in"),
]


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
@pytest.mark.parametrize("name,value,message", BAD)
def test_bad_values_name_the_parameter(chapter, name, value, message):
    table = CHAPTERS[chapter]["default"]
    if name not in table and name not in ("profile", "seed"):
        pytest.skip(f"{chapter} has no {name}")
    kwargs = {"profile": value} if name == "profile" else {"profile": "default", name: value}
    profile = kwargs.pop("profile")
    if message is None:
        chapter_settings(chapter, profile, **kwargs)
        return
    with pytest.raises(ValueError, match=message):
        chapter_settings(chapter, profile, **kwargs)


def test_unknown_parameter_and_chapter_are_errors():
    with pytest.raises(ValueError, match=r"has no parameter\(s\) \['gird'\]"):
        chapter_settings("gap_keeps_position", "default", gird=4)
    with pytest.raises(ValueError, match="chapter must be one of"):
        chapter_settings("nope", "default")
    with pytest.raises(ValueError, match="unknown parameter"):
        check_value("colour", "red")


def test_none_means_the_profile_value_and_overrides_win():
    s = chapter_settings("gap_keeps_position", "default", grid=None, padding="circular")
    assert s.grid == CHAPTERS["gap_keeps_position"]["default"]["grid"]
    assert s.padding == "circular"


def test_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("POSINFO_PROFILE", "smoke")
    assert posinfo.default_profile() == "smoke"
    monkeypatch.setenv("POSINFO_PROFILE", "fast")
    with pytest.raises(ValueError, match="profile must be one of"):
        posinfo.default_profile()
