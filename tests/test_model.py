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


def test_ridge_coordinates_change_the_sampler_not_the_posterior(example_runs):
    """A and B are sampled as log_A_ref = ln A - alpha ln N_ref (a shear of unit Jacobian): the log
    density at corresponding points equals the one of the plain (ln A, alpha) coordinates, exactly."""
    import dataclasses

    import jax.numpy as jnp
    from numpyro.infer.util import potential_energy

    from bayes_scaling.model import build_model, covariates, ridge_sites

    card = bs.load_card("chinchilla")
    plain_card = dataclasses.replace(card, law=dataclasses.replace(card.law, ridges=()))
    assert set(ridge_sites(card)) == {"A", "B"} and ridge_sites(plain_card) == {}
    x = {k: jnp.asarray(v) for k, v in covariates(example_runs, card).items()}
    log_loss = jnp.log(example_runs["loss"].to_numpy(float))
    (_, ref_n), (_, ref_d) = ridge_sites(card)["A"], ridge_sites(card)["B"]
    rng = np.random.default_rng(0)
    for _ in range(5):
        log_a, log_b, u_alpha, u_beta = rng.normal([6.0, 7.5, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0])
        common = {"E": jnp.log(1.7), "alpha": u_alpha, "beta": u_beta, "sigma": jnp.log(0.02)}
        # alpha's unconstrained value maps to alpha through the truncation's transform
        from numpyro.distributions import biject_to

        alpha = biject_to(card.priors["alpha"].to_numpyro().support)(u_alpha)
        beta = biject_to(card.priors["beta"].to_numpyro().support)(u_beta)
        old = potential_energy(build_model(plain_card), (x,), {"log_loss": log_loss},
                               {**common, "A": log_a, "B": log_b})
        new = potential_energy(build_model(card), (x,), {"log_loss": log_loss},
                               {**common, "log_A_ref": log_a - alpha * ref_n, "log_B_ref": log_b - beta * ref_d})
        assert float(new) == pytest.approx(float(old), rel=1e-12)
