"""Merging metric states (per process, per pass) adds counts and never ties two objects
together: after a merge each keeps counting on its own."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from segvit.errors import SegvitError
from segvit.metrics import SegMetric

maps = st.lists(st.integers(0, 3), min_size=4, max_size=4).map(lambda v: torch.tensor(v).view(2, 2))


def _metric(*pairs) -> SegMetric:
    metric = SegMetric(num_classes=4)
    for pred, label in pairs:
        metric.update(pred, label)
    return metric


@settings(max_examples=40, deadline=None)
@given(maps, maps, maps, maps, st.booleans())
def test_a_merge_adds_counts_and_leaves_both_objects_independent(p1, l1, p2, l2, empty_self):
    a = SegMetric(num_classes=4) if empty_self else _metric((p1, l1))
    b = _metric((p2, l2))
    before_b = b.confusion.clone()
    want = (0 if empty_self else _metric((p1, l1)).confusion) + before_b
    assert a.merge(b) is a
    assert torch.equal(a.confusion, want)
    b.update(p1, l1)  # the merged-in object keeps counting: `a` must not see it
    assert torch.equal(a.confusion, want)
    a.update(p2, l2)  # nor `b` what `a` counts next
    assert torch.equal(b.confusion, before_b + _metric((p1, l1)).confusion)
    b.reset()
    assert torch.equal(a.confusion, want + _metric((p2, l2)).confusion)


def test_merging_an_empty_state_changes_nothing():
    a = _metric((torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.long)))
    before = a.confusion.clone()
    a.merge(SegMetric(num_classes=4))
    assert torch.equal(a.confusion, before)


@pytest.mark.parametrize("other", [dict(num_classes=5), dict(num_classes=4, ignore_index=0)])
def test_states_of_other_classes_or_ignore_ids_do_not_merge(other):
    with pytest.raises(SegvitError, match="cannot merge metrics over"):
        SegMetric(num_classes=4).merge(SegMetric(**other))
