import numpy as np
import pytest
import torch

from posinfo.canvas import CanvasTask
from posinfo.datasets import ImageSet
from posinfo.models import build_classifier
from posinfo.permute import (ChannelPermutation, add_channel_permutation, check_placement,
                             permute_channels, reseed_permutations)
from posinfo.probes import (cell_means, gap_latents, linear_probe, probe_rows, probe_table,
                            selectivity, sorted_latent)


def test_permutation_differs_across_calls_and_keeps_the_multiset_of_values():
    shuffle = ChannelPermutation(seed=0).eval()  # eval mode too: PermuteNet shuffles at test time
    x = torch.arange(2 * 32 * 3 * 3, dtype=torch.float32).reshape(2, 32, 3, 3)
    a, b = shuffle(x), shuffle(x)
    assert not torch.equal(a, b)
    for out in (a, b):
        assert torch.equal(out.sort(dim=1).values, x.sort(dim=1).values)
        # whole channels move: each output channel equals some input channel
        assert all(any(torch.equal(out[:, i], x[:, j]) for j in range(32)) for i in range(32))


def test_one_order_per_sample_moves_each_samples_channels_by_its_own_order():
    x = torch.rand(3, 5, 2, 2)
    orders = torch.stack([torch.randperm(5) for _ in range(3)])
    each = permute_channels(x, orders)
    for n in range(3):
        assert torch.equal(each[n], x[n, orders[n]])
        assert torch.equal(permute_channels(x, orders[n])[n], each[n])  # one shared order
    assert torch.equal(permute_channels(x[:, :, 0, 0], orders), each[:, :, 0, 0])  # pooled
    with pytest.raises(ValueError, match="order must have shape"):
        permute_channels(x, orders[:2])


def test_same_seed_repeats_the_same_shuffles():
    x = torch.rand(1, 16, 2, 2)
    one, two = ChannelPermutation(seed=3), ChannelPermutation(seed=3)
    assert all(torch.equal(one(x), two(x)) for _ in range(3))


@pytest.mark.parametrize("placement", [1, 2, 3, 4, 5])
def test_every_placement_inserts_one_shuffle_and_keeps_shapes(placement):
    model = build_classifier(1, 9, width=4, blocks=(1, 1, 1, 1), head="gap_linear")
    add_channel_permutation(model, placement, seed=0)
    shuffles = [m for m in model.modules() if isinstance(m, ChannelPermutation)]
    assert len(shuffles) == 1
    assert model.eval()(torch.rand(2, 1, 48, 48)).shape == (2, 9)


def test_after_gap_shuffle_really_changes_the_logits():
    torch.manual_seed(0)
    model = add_channel_permutation(build_classifier(1, 9, width=4, blocks=(1, 1),
                                                     head="gap_linear"), 3, seed=0).eval()
    x = torch.rand(4, 1, 32, 32)
    assert not torch.allclose(model(x), model(x))
    reseed_permutations(model, 7)
    first = model(x)
    reseed_permutations(model, 7)
    assert torch.equal(first, model(x))


def test_bad_placements_are_clear_errors():
    with pytest.raises(ValueError, match=r"permute_at must be an integer in 1..5 .* got 6"):
        check_placement(6, 4)
    with pytest.raises(ValueError, match="permute_at must be an integer"):
        check_placement(0, 4)
    gapnet = build_classifier(1, 9, width=4, blocks=(1, 1, 1, 1), head="gapnet")
    with pytest.raises(ValueError, match="needs head='gap_linear'"):
        add_channel_permutation(gapnet, 5)


def test_sorted_latent_is_invariant_to_channel_order():
    z = np.random.default_rng(0).normal(size=(5, 12))
    perm = np.random.default_rng(1).permutation(12)
    assert np.array_equal(sorted_latent(z), sorted_latent(z[:, perm]))
    assert np.array_equal(np.sort(sorted_latent(z), axis=1), sorted_latent(z))


def test_probes_read_a_planted_signal_only_where_it_is():
    rng = np.random.default_rng(0)
    images = np.repeat(np.arange(60), 4)
    cells = np.tile(np.arange(4), 60)
    z = rng.normal(size=(240, 8))
    z[np.arange(240), cells] += 3.0  # channel k fires for cell k: position in channel order
    assert linear_probe(z, cells, images) > 0.9
    # sorting keeps the values but not which channel holds the large one
    assert linear_probe(sorted_latent(z), cells, images) < 0.5
    table = probe_table(z, {"cell": cells, "class": images % 2, "image": images})
    assert set(table) == {(o, n) for o in ("ordered", "sorted") for n in ("cell", "class")}


def test_selectivity_is_one_for_a_label_copy_and_zero_for_a_constant():
    labels = np.repeat(np.arange(3), 10)
    z = np.stack([labels.astype(float), np.ones(30), np.random.default_rng(0).normal(size=30)], 1)
    eta = selectivity(z, labels)
    assert np.isclose(eta[0], 1.0) and eta[1] == 0.0 and eta[2] < 0.3


def test_cell_means_average_each_channel_over_the_canvases_of_each_cell():
    cells = np.array([0, 0, 1, 2, 3, 3])
    z = np.array([[1.0, 0], [3, 0], [5, 1], [7, 2], [9, 3], [11, 3]])
    assert np.array_equal(cell_means(z, cells, grid=2), [[2, 5, 7, 10], [0, 1, 2, 3]])


def test_gap_latents_need_a_model_with_latents():
    images = ImageSet(torch.rand(3, 1, 8, 8), torch.arange(3), 3)
    task = CanvasTask(images, images, grid=2)
    model = build_classifier(1, 4, width=4, blocks=(1,), head="gap_linear")
    z = gap_latents(model, task, device="cpu")
    assert z.shape == (12, 4) and len(task.test_labels()["cell"]) == 12
    with pytest.raises(ValueError, match="probes need a model with GAP latents"):
        gap_latents(torch.nn.Linear(2, 2), task, device="cpu")


def test_retention_puts_both_tasks_on_one_scale():
    from posinfo.permute import retention
    # location: chance 1/9, baseline 1.0, shuffled at chance -> keeps 0
    # class: chance 0.1, baseline 0.9, shuffled 0.7 -> keeps (0.6 / 0.8) = 0.75
    assert retention([1 / 9], [1.0], 1 / 9)[0] == pytest.approx(0.0)
    assert retention([0.7, 0.9], [0.9, 0.9], 0.1) == pytest.approx([0.75, 1.0])


def test_retention_of_a_baseline_that_learnt_nothing_stays_bounded():
    from posinfo.permute import LEARNT_FLOOR, retention
    # baseline exactly at chance: the share is (shuffled - chance) / (0.1 * (1 - chance))
    kept = retention([0.12], [0.1], 0.1)[0]
    assert kept == pytest.approx(0.02 / (LEARNT_FLOOR * 0.9))


def test_the_shuffle_moves_channel_perm_i_to_i_for_every_sample_alike():
    # Known answer: the k-th call uses the k-th randperm of a generator seeded with the seed,
    # output channel i is input channel perm[i], and every sample of the batch gets the same
    # permutation (the reference code shuffles the batch as one).
    x = torch.arange(3 * 8 * 2 * 2, dtype=torch.float32).reshape(3, 8, 2, 2)  # all distinct
    shuffle = ChannelPermutation(seed=5)
    draws = torch.Generator().manual_seed(5)
    for _ in range(3):
        perm = torch.randperm(8, generator=draws)
        assert not torch.equal(perm, torch.arange(8))  # a real shuffle, not the identity
        out = shuffle(x)
        for n in range(3):
            for i in range(8):
                assert torch.equal(out[n, i], x[n, perm[i]])


@pytest.mark.parametrize("placement", [1, 2, 3, 4, 5])
def test_placement_k_shuffles_the_input_of_stage_k_and_5_the_pooled_vector(placement):
    # The paper's placements: k = 1..4 before backbone stage k (on what the stem or stage
    # k - 1 produced), 5 after GAP (on the pooled vector, before the linear layer).
    width, blocks = 4, (1, 1, 1, 1)
    model = add_channel_permutation(build_classifier(1, 9, width=width, blocks=blocks,
                                                     head="gap_linear"), placement, seed=0)
    where = [name for name, m in model.named_modules() if isinstance(m, ChannelPermutation)]
    assert where == ([f"backbone.stage{placement}.0"] if placement <= 4 else ["head.fc.0"])
    seen = []
    shuffle = model.get_submodule(where[0])
    shuffle.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    model.eval()(torch.rand(2, 1, 48, 48))
    # stage k's input has the stem's width for k = 1, 2 (stage 1 keeps it) and doubles after;
    # after GAP the vector has the last stage's 8 * width channels and no spatial dims
    channels = {1: width, 2: width, 3: 2 * width, 4: 4 * width, 5: 8 * width}[placement]
    assert seen[0][1] == channels and len(seen[0]) == (2 if placement == 5 else 4)


def test_probe_rows_put_each_networks_probes_beside_each_labels_chance():
    table = {("ordered", "cell"): 0.9, ("sorted", "cell"): 0.4,
             ("ordered", "class"): 0.8, ("sorted", "class"): 0.7}
    rows = probe_rows({"class": table}, {"location": 1 / 9, "class": 0.1})
    assert rows["class"] == {"cell, ordered": 0.9, "cell, sorted": 0.4,
                             "class, ordered": 0.8, "class, sorted": 0.7}
    assert rows["chance"] == {"cell, ordered": 1 / 9, "cell, sorted": 1 / 9,
                              "class, ordered": 0.1, "class, sorted": 0.1}
