import pytest

from exstreamtv.engine.onair.schedule import Schedule, ScheduleItem

ITEMS = [ScheduleItem("/a", 10.0, "A"), ScheduleItem("/b", 20.0, "B"), ScheduleItem("/c", 5.0, "C")]
EPOCH = 1_000_000.0


def test_inside_an_item():
    s = Schedule(ITEMS, EPOCH)
    slot = s.at(EPOCH + 12.5)
    assert (slot.item.title, slot.offset, slot.start, slot.end) == ("B", 2.5, EPOCH + 10, EPOCH + 30)
    assert slot.remaining == pytest.approx(17.5)


def test_exact_boundaries_belong_to_the_next_item():
    s = Schedule(ITEMS, EPOCH)
    assert s.at(EPOCH).item.title == "A" and s.at(EPOCH).offset == 0
    assert s.at(EPOCH + 10).item.title == "B" and s.at(EPOCH + 10).offset == 0
    assert s.at(EPOCH + 30).item.title == "C"
    assert s.at(EPOCH + 35).item.title == "A"  # loop boundary


def test_after_several_loops():
    s = Schedule(ITEMS, EPOCH)
    t = EPOCH + 7 * 35 + 31.25
    slot = s.at(t)
    assert slot.item.title == "C"
    assert slot.offset == pytest.approx(1.25)
    assert slot.start == pytest.approx(EPOCH + 7 * 35 + 30)


def test_before_epoch_counts_backwards():
    s = Schedule(ITEMS, EPOCH)
    slot = s.at(EPOCH - 1)
    assert slot.item.title == "C" and slot.offset == pytest.approx(4.0)


def test_upcoming_is_contiguous_and_covers_horizon():
    s = Schedule(ITEMS, EPOCH)
    slots = s.upcoming(EPOCH + 3, 100)
    assert slots[0].item.title == "A" and slots[0].offset == 3
    for a, b in zip(slots, slots[1:]):
        assert b.start == pytest.approx(a.end)
    assert slots[-1].end >= EPOCH + 103
    assert [x.item.title for x in slots[:5]] == ["A", "B", "C", "A", "B"]


def test_zero_duration_items_are_dropped_and_empty_is_refused():
    s = Schedule([ScheduleItem("/z", 0, "Z"), ScheduleItem("/a", 4, "A")], EPOCH)
    assert [i.title for i in s.items] == ["A"]
    with pytest.raises(ValueError):
        Schedule([ScheduleItem("/z", 0, "Z")], EPOCH)
