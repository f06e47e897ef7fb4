"""A variant's name reads back into the parts it was made of: base, scale label (phase or rung), seed."""

import pytest

from ablate.names import VariantName, label_value, phase_label, rung_label

# name → (base, label, seed): every form the plan writes, and the odd ones read as they always were
PARSED = {
    "baseline": ("baseline", None, None),
    "baseline.s1": ("baseline", None, 1),
    "no-math@p10": ("no-math", "p10", None),
    "no-math@p10.s2": ("no-math", "p10", 2),
    "no-math@r2": ("no-math", "r2", None),
    "baseline@r1.s1": ("baseline", "r1", 1),
    "mix.v2@p12.5.s2": ("mix.v2", "p12.5", 2),  # a dot in the base and in the label
    "no-math+code.s0": ("no-math+code", None, 0),
    "baseline.s4294967295": ("baseline", None, 4294967295),
    "x@p1.5": ("x", "p1.5", None),
    "a@b@p2.5": ("a@b", "p2.5", None),  # only the last '@' can mark a label
    "no@p10@r1.s3": ("no@p10", "r1", 3),  # a phase study's variant as a ladder's rung
    "a@b": ("a@b", None, None),  # not a label: p or r, then a number
    "x@p": ("x@p", None, None),
    "x@r": ("x@r", None, None),
    "x@q10": ("x@q10", None, None),
    "x@p1.5.5": ("x@p1.5.5", None, None),  # two dots: no number
    "x@p10x": ("x@p10x", None, None),
    "x@p10.s": ("x@p10.s", None, None),  # no seed digits: not a seed, nor a label
    "x.s1@p10": ("x.s1", "p10", None),  # a seed mark before the label is part of the base
    "x.sa": ("x.sa", None, None),
    ".s1": (".s1", None, None),  # a seed needs something before it
    "x.s1.s2": ("x.s1", None, 2),
}


@pytest.mark.parametrize("name", PARSED)
def test_a_name_parses_into_its_parts_and_formats_back_to_itself(name):
    parsed = VariantName.parse(name)
    assert (parsed.base, parsed.label, parsed.seed) == PARSED[name]
    assert str(parsed) == name
    assert str(parsed.without_seed()) + ("" if parsed.seed is None else f".s{parsed.seed}") == name


def test_an_ablation_carries_no_seed():
    assert VariantName.parse_ablation("no-math@p10") == VariantName("no-math", "p10")
    assert VariantName.parse_ablation("pretrained@p10") == VariantName("pretrained", "p10")  # a phase's start
    assert VariantName.parse_ablation("web.s1") == VariantName("web.s1")  # a subset may be named so
    assert VariantName.parse_ablation("no-math@p10.s2") == VariantName("no-math@p10.s2")  # no label: 'p10.s2'
    for ablation in ("a@b@p2.5", "odd@name", "x@p", "mix.v2@p12.5"):
        assert str(VariantName.parse_ablation(ablation)) == ablation


def test_at_marks_a_name_at_a_scale_and_keeps_its_seed():
    assert str(VariantName("baseline").at("r1")) == "baseline@r1"
    assert str(VariantName.parse("baseline.s1").at("r1")) == "baseline@r1.s1"
    assert str(VariantName.parse("no@p10.s1").at("r1")) == "no@p10@r1.s1"  # after the label it has
    assert VariantName.parse("no-math").at(None) == VariantName("no-math")
    assert VariantName.parse("no-math@p10.s2").without_seed() == VariantName("no-math", "p10")


def test_labels_of_phases_and_rungs():
    assert phase_label(0.05) == "p5" and phase_label(0.025) == "p2.5" and phase_label(0.07) == "p7"
    assert phase_label(0.1) == "p10" and phase_label(0.125) == "p12.5"
    assert [rung_label(i) for i in range(3)] == ["r1", "r2", "r3"]
    assert label_value("p12.5") == 12.5 and label_value("r2") == 2.0
    for label in ("p5", "p12.5", "r3"):
        assert VariantName.parse(f"a@{label}").label == label


def test_a_seed_reads_back_in_the_plans_digits():
    assert VariantName.parse("x.s01") == VariantName("x", None, 1)  # read, as --from reads a folder so named
    assert str(VariantName.parse("x.s01")) == "x.s1"
    assert str(VariantName("baseline", seed=0)) == "baseline.s0" and str(VariantName("b", "p5", 7)) == "b@p5.s7"
