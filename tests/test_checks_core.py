"""The graders' shared reporting: a stub's one-line message, the success line naming the graded code, the
diagnoses of a flipped sign and an off-by-one, and `show_solution`."""

import functools
import re

import pytest
import torch

from dreamer_tutorial import checks, networks
from dreamer_tutorial.checks import CheckFailed


def stub(*args, **kwargs):
    raise NotImplementedError


def my_discount_weights(start_cont, discount):  # a learner's correct solution, written independently
    weights = [start_cont]
    for t in range(1, len(discount)):
        weights.append(weights[-1] * discount[t - 1])
    return torch.stack(weights)


@pytest.mark.parametrize("grader,name", [(checks.check_preprocess, "preprocess"),
                                         (checks.check_conv_output_size, "conv_output_size"),
                                         (checks.check_num_updates, "num_updates")])
def test_stub_gives_the_exact_one_line_message(grader, name):
    with pytest.raises(CheckFailed) as info:
        grader(stub)
    assert str(info.value) == (f"{name}: not implemented yet - write your code in the exercise cell (where it says "
                               "YOUR CODE HERE), run that cell, then this one.")
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no chained NotImplementedError


def test_success_line_names_the_learners_code(capsys):
    checks.check_discount_weights(my_discount_weights)
    assert capsys.readouterr().out == ("✅ discount_weights passed - graded: your code (my_discount_weights)\n")


def test_success_line_names_the_reference(capsys):
    checks.check_discount_weights(checks.reference_discount_weights)
    checks.check_preprocess(networks.preprocess)
    assert capsys.readouterr().out.splitlines() == [
        "✅ discount_weights passed - graded: the reference implementation "
        "(dreamer_tutorial.checks.lesson05.reference_discount_weights)",
        "✅ preprocess passed - graded: the reference implementation (dreamer_tutorial.networks.preprocess)"]


def test_graded_names_classes_instances_partials_and_modules():
    class MyEncoder(torch.nn.Module):
        pass

    assert re.fullmatch(r"your code \(.*MyEncoder\)", checks.graded(MyEncoder))
    assert re.fullmatch(r"your code \(.*MyEncoder\)", checks.graded(MyEncoder()))
    assert checks.graded(functools.partial(my_discount_weights)) == "your code (my_discount_weights)"
    assert checks.graded(networks) == "the reference implementation (dreamer_tutorial.networks)"
    assert checks.graded(networks.ConvEncoder) == \
        "the reference implementation (dreamer_tutorial.networks.ConvEncoder)"
    assert checks.graded(torch) == "your code (torch)"


def test_a_learners_crash_is_reported_with_its_cause():
    def crashes(start_cont, discount):
        raise IndexError("boom")

    with pytest.raises(CheckFailed, match="your code raised IndexError: boom") as info:
        checks.check_discount_weights(crashes)
    assert isinstance(info.value.__cause__, IndexError)


def test_flipped_sign_and_off_by_one_are_named():
    with pytest.raises(CheckFailed, match="values are wrong.*opposite sign"):
        checks.check_discount_weights(lambda cont, d: -my_discount_weights(cont, d))
    with pytest.raises(CheckFailed, match=r"values are wrong.*axis 0, your entry t equals the expected entry t \+ 1"):
        checks.check_discount_weights(lambda cont, d: cont * torch.cumprod(d, 0))
    with pytest.raises(CheckFailed, match=r"your entry t equals the expected entry t - 1"):
        checks.check_discount_weights(lambda cont, d: torch.cat([cont[None], my_discount_weights(cont, d)[:-1]]))


@pytest.mark.parametrize("exercise,def_line", [
    ("replay_rows", "def reference_replay_rows("),
    ("check_resize_frame", "def reference_resize_frame("),
    ("preprocess", "def preprocess("),  # graded against the package's function
    ("lambda_return", "def lambda_return("),
])
def test_show_solution_prints_the_source(exercise, def_line, capsys):
    checks.show_solution(exercise)
    assert any(line.startswith(def_line) for line in capsys.readouterr().out.splitlines())


def test_every_grader_has_a_solution_to_show(capsys):
    for name in checks.__all__:
        if name.startswith("check_") and name != "check_function":
            checks.show_solution(name)
            out = capsys.readouterr().out
            assert "\ndef " in out or "\nclass " in out, name  # a function, or a class (the encoder exercise)


def test_show_solution_rejects_an_unknown_exercise():
    with pytest.raises(ValueError, match="no exercise named 'nonsense'; expected one of .*resize_frame"):
        checks.show_solution("nonsense")
