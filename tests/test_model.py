import numpy as np
import pytest

import bayes_scaling as bs
from bayes_scaling.model import covariates


def test_data_constrained_card_refuses_a_table_without_unique_tokens(example_runs):
    card = bs.load_card("data-constrained")
    with pytest.raises(bs.RunTableError, match=r"card 'data-constrained' \(law 'data-constrained'\) needs column\(s\) "
                                               r"unique_tokens \(or epochs"):
        covariates(example_runs, card)
    with pytest.raises(bs.RunTableError, match="needs column"):
        bs.fit(example_runs, card, chains=1, warmup=5, draws=5)


def test_unique_tokens_are_derived_from_epochs(example_runs):
    runs = example_runs.assign(epochs=4.0)
    x = covariates(runs, bs.load_card("data-constrained"))
    np.testing.assert_allclose(x["log_unique_tokens"], np.log(runs["tokens"] / 4.0))


def test_non_embedding_count_subtracts_embedding_params(example_runs):
    runs = example_runs.assign(embedding_params=0.25 * example_runs["params"])
    card = bs.load_card("chinchilla")
    np.testing.assert_allclose(covariates(runs, card, "non_embedding")["log_params"], np.log(0.75 * runs["params"]))
    np.testing.assert_allclose(covariates(runs, card)["log_params"], np.log(runs["params"]))
    with pytest.raises(bs.RunTableError, match="param_count='non_embedding' needs column embedding_params"):
        covariates(example_runs, card, "non_embedding")
    with pytest.raises(bs.RunTableError, match="index 0: embedding_params is not smaller than params"):
        covariates(runs.assign(embedding_params=runs["params"]), card, "non_embedding")
    with pytest.raises(bs.InputError, match="param_count must be one of total, non_embedding but got 'all'"):
        covariates(runs, card, "all")


def test_pooled_card_needs_groups_and_maps_runs_to_them(example_runs):
    card = bs.load_card("hierarchical")
    with pytest.raises(bs.RunTableError, match="card 'hierarchical' .* needs column\\(s\\) group"):
        covariates(example_runs, card)
    labels = np.where(np.arange(len(example_runs)) % 3 == 0, "web", "code")
    x = covariates(example_runs.assign(group=labels), card)
    assert x["group_onehot"].shape == (len(example_runs), 2)
    np.testing.assert_array_equal(x["group_onehot"][:, 1], labels == "web")  # levels sorted: code, web


@pytest.mark.parametrize("form, latent", [("centred", "log_E"), ("non_centred", "z_E")])
def test_pooled_model_has_one_value_per_group_in_either_parametrisation(example_runs, form, latent):
    from numpyro.handlers import seed, trace

    from bayes_scaling.cards import parse_card
    from bayes_scaling.model import build_model

    card = parse_card(bs.load_card("hierarchical").text.replace('"centred"', f'"{form}"'))
    runs = example_runs.assign(group=np.where(np.arange(len(example_runs)) % 2 == 0, "a", "b"))
    sites = trace(seed(build_model(card), 0)).get_trace(covariates(runs, card))
    assert sites[latent]["value"].shape == (2,) and sites["E"]["value"].shape == (2,)
    assert sites["alpha"]["value"].shape == () and sites["log_loss"]["value"].shape == (len(runs),)
    np.testing.assert_allclose(np.log(sites["E"]["value"]),
                               sites[latent]["value"] if form == "centred" else
                               sites["mu_log_E"]["value"] + sites["tau_log_E"]["value"] * sites[latent]["value"])
