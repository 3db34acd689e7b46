"""The synthetic enlargement keeps the real distributions and marks every row."""

from dpe_pipeline import synthetic
from dpe_pipeline.snapshot import load_dataset


def test_enlarged_rows_are_marked_and_keep_the_label_distribution():
    real = load_dataset("dpe03existant")
    fake = synthetic.enlarge(real, 20_000, seed=1)
    assert len(fake) == 20_000 and fake["synthetique"].all()
    assert fake["numero_dpe"].str.match(r"^SYN\d{10}$").all()
    real_share = real["etiquette_dpe"].value_counts(normalize=True)
    fake_share = fake["etiquette_dpe"].value_counts(normalize=True)
    assert (real_share - fake_share).abs().max() < 0.02
    # a few DPE come twice, the later version with later dates
    assert 0 < len(fake) - fake["numero_dpe"].nunique() <= 0.03 * len(fake)


def test_enlargement_is_reproducible():
    real = load_dataset("dpe03existant").head(500)
    assert synthetic.enlarge(real, 1000, seed=7).equals(synthetic.enlarge(real, 1000, seed=7))
