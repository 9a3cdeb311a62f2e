import pytest

import posinfo
from posinfo.checks import PROFILES, check_value
from posinfo.settings import CHAPTERS, FIRST_VERDICT_SEED, chapter_settings


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_table_is_valid(chapter, profile):
    settings = chapter_settings(chapter, profile)
    # The classifier chapters start at the reference code's seed at paper scale.
    paper_seed = profile == "paper" and chapter in ("gap_keeps_position", "channel_order")
    first = 627937 if paper_seed else FIRST_VERDICT_SEED
    assert settings.profile == profile and settings.seed == first
    assert chapter_settings(chapter, profile, seed=5).seed == 5
    # the verdict seeds never reach into the pilot seeds the settings were chosen on
    assert settings.seeds[0] == first and len(settings.seeds) == settings.get("n_seeds", 1)


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
    # the verdict's knobs
    ("n_seeds", 0, "n_seeds must be an integer in"),
    ("n_seeds", True, "n_seeds must be an integer"),
    ("confidence", 1, r"confidence must be a number in \(0, 1\)"),
    ("confidence", 95, r"confidence must be a number in \(0, 1\)"),
    ("confidence", True, r"confidence must be a number in \(0, 1\)"),
    ("min_gain", 2, r"min_gain must be a number in \[0, 1\]"),
    ("min_gap", "0.05", r"min_gap must be a number in \[0, 1\]"),
    ("min_asymmetry", float("nan"), r"min_asymmetry must be a number in \[0, 1\]"),
    ("min_gain", -0.01, r"min_gain must be a number in \[0, 1\]"),
    ("budgets", (0, 2), r"budgets\[0\] must be an integer in \[1, 1000\]"),
    ("ablation_seeds", 0, r"ablation_seeds must be an integer in \[1, 100\]"),
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


@pytest.mark.parametrize("value", [True, 3.0, "3"])
def test_a_choice_is_type_strict(value):
    # True == 1 and 3.0 == 3 in Python: `in` alone let both through to fail after training.
    with pytest.raises(ValueError, match=r"blur_size must be one of \(1, 2, 3, 4, 5, 6, 7\), got "):
        chapter_settings("augshift", "smoke", blur_size=value)
    assert chapter_settings("augshift", "smoke", blur_size=3).blur_size == 3


def test_a_blur_wider_than_the_last_map_is_refused_before_training():
    # An 8px canvas with blocks (1, 1, 1): the last BlurPool filters a 2x2 map.
    with pytest.raises(ValueError, match=r"blur_size must be in \[1, 3\] for a canvas of 8px"):
        chapter_settings("augshift", "default", image_size=4, margin=2, max_shift=2, blur_size=7)
    chapter_settings("augshift", "default", image_size=4, margin=2, max_shift=2, blur_size=3)


def test_region_channels_is_checked_against_the_backbone():
    chapter = "region_attack"
    with pytest.raises(ValueError, match=r"region_channels must be an integer in \[1, 64\] "
                                         r"\(the backbone's output channels .*got 65"):
        chapter_settings(chapter, "default", region_channels=65)  # width 16, three stages
    assert chapter_settings(chapter, "default", region_channels=64).region_channels == 64
    # a wider backbone has more channels to zero
    assert chapter_settings(chapter, "default", width=32, region_channels=128).width == 32
    with pytest.raises(ValueError, match=r"region_channels must be an integer in \[1, 2048\]"):
        chapter_settings(chapter, "paper", region_channels=2049)


def test_the_backbone_channel_count_the_check_uses_is_the_real_one():
    from posinfo.segment import build_segmenter
    from posinfo.checks import PAPER_SEGMENTER_CHANNELS
    s = chapter_settings("region_attack", "default")
    with pytest.raises(ValueError, match=r"\[1, 64\]"):
        chapter_settings("region_attack", "default", region_channels=65)
    assert build_segmenter(3, s.width, s.blocks, atrous_rates=(1,), head_channels=4).channels == 64
    assert PAPER_SEGMENTER_CHANNELS == 2048


def test_a_canvas_beyond_the_profiles_memory_budget_is_refused_with_the_limit():
    # default: batch 64 x width 16 x (side / 2)^2 x 4 bytes <= 512 MiB allows 724px.
    with pytest.raises(ValueError, match=r"image_size must be at most 45 with grid=16 \(a canvas "
                                         r"of at most 724px\), got 512 .*512 MiB"):
        chapter_settings("gap_keeps_position", "default", image_size=512, grid=16)
    chapter_settings("gap_keeps_position", "default", image_size=64, grid=3)
    with pytest.raises(ValueError, match=r"image_size \+ 2 \* margin \(the canvas\) must be at "
                                         r"most 362px, got 524px"):
        chapter_settings("augshift", "default", margin=256, max_shift=2)
    with pytest.raises(ValueError, match=r"scene_width must be at most 512 with scene_height=2048"):
        chapter_settings("position_channels", "default", scene_height=2048, scene_width=4096)
    # the limit follows the profile: a smaller batch allows a larger canvas
    from posinfo.checks import MEMORY_BUDGET_MIB
    assert MEMORY_BUDGET_MIB["smoke"] <= MEMORY_BUDGET_MIB["default"] <= MEMORY_BUDGET_MIB["paper"]


def test_one_checkpoint_is_one_seed():
    with pytest.raises(ValueError, match=r"n_seeds must be 1 with data='cityscapes'"):
        chapter_settings("position_channels", "paper", n_seeds=3)


def test_budgets_are_snapshots_of_the_verdicts_run_and_ablations_a_subset_of_its_seeds():
    with pytest.raises(ValueError, match=r"budgets must each be at most epochs=8"):
        chapter_settings("augshift", "default", budgets=(1, 16))
    with pytest.raises(ValueError, match=r"ablation_seeds must be an integer in \[1, n_seeds=3\]"):
        chapter_settings("channel_order", "default", ablation_seeds=4)
    s = chapter_settings("augshift", "default", epochs=6, budgets=(1, 3))
    assert s.budget_epochs == [1, 3, 6]  # the verdict's budget always ends the curve
    # the profile's own budgets follow a shorter run
    assert chapter_settings("augshift", "default", epochs=3).budget_epochs == [1, 2, 3]
    assert s.ablations == s.seeds[:s.ablation_seeds]
